// Types for the one part of dbus-native that bus.ts loads: its message marshalling (lib/message.js).

declare module "dbus-native/lib/message" {
  import type { Message } from "dbus-native";
  /** A whole message (header, fields, body) as wire bytes, little-endian. */
  export function marshall(message: Message): Buffer;
  /** One whole message's bytes back into a Message; throws on a malformed one. */
  export function unmarshall(bytes: Buffer): Message;
}
