// The node's file tree as the audit reads it: the live "/" or an image under --root DIR.

import { type Stats, lstatSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { NodeStateError } from "../node/errors";

const MAX_LINKS = 40; // as the kernel's ELOOP limit

function missing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * Every path the audit names is a path on the node ("/etc/pam.d/sshd"); the tree maps it under its
 * root. Findings name node paths, so an image audited under --root reads like the node it becomes.
 * Errors other than "not there" (EACCES, EIO) are thrown as NodeStateError naming the node path.
 */
export class Tree {
  constructor(readonly root = "/") {}

  /** Whether this is the running node (live checks make sense) rather than an image. */
  get live(): boolean {
    return this.root === "/";
  }

  abs(path: string): string {
    return this.live ? path : join(this.root, path);
  }

  /** The file's text, or undefined if there is none. */
  read(path: string): string | undefined {
    try {
      return readFileSync(this.abs(path), "utf8");
    } catch (e) {
      if (missing(e)) return undefined;
      throw new NodeStateError(path, (e as Error).message);
    }
  }

  /** The names in a directory, sorted, or undefined if there is no such directory. */
  list(dir: string): string[] | undefined {
    try {
      return readdirSync(this.abs(dir)).sort();
    } catch (e) {
      if (missing(e)) return undefined;
      throw new NodeStateError(dir, (e as Error).message);
    }
  }

  lstat(path: string): Stats | undefined {
    try {
      return lstatSync(this.abs(path));
    } catch (e) {
      if (missing(e)) return undefined;
      throw new NodeStateError(path, (e as Error).message);
    }
  }

  /** A symbolic link's target as written, or undefined if `path` is not a link. */
  readlink(path: string): string | undefined {
    return this.lstat(path)?.isSymbolicLink() ? readlinkSync(this.abs(path)) : undefined;
  }

  /**
   * The node path `path` leads to after every symbolic link, resolved inside the tree (an absolute
   * link target in an image points into the image, not at the auditing host), or undefined when
   * it leads nowhere.
   */
  resolve(path: string): string | undefined {
    let todo = path.split("/").filter((p) => p !== "" && p !== ".");
    let done: string[] = [];
    let links = 0;
    while (todo.length > 0) {
      const name = todo.shift()!;
      if (name === "..") {
        done.pop();
        continue;
      }
      const here = `/${[...done, name].join("/")}`;
      const st = this.lstat(here);
      if (!st) return undefined;
      if (!st.isSymbolicLink()) {
        done.push(name);
        continue;
      }
      if (++links > MAX_LINKS) throw new NodeStateError(path, "too many levels of symbolic links");
      const target = readlinkSync(this.abs(here)); // lstat said it is a link
      if (target.startsWith("/")) done = [];
      todo = [...target.split("/").filter((p) => p !== "" && p !== "."), ...todo];
    }
    return `/${done.join("/")}`;
  }
}
