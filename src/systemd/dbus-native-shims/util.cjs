// What dbus-native's values.js takes from node:util, without loading node:util: the symbol of a
// custom inspect method (the registered one, which node:util's is) and inspect itself, which
// loads the real module on its first call only (a Variant printed while debugging).
// Bundled in place of "util" for dbus-native's files only (build/compile.ts): node:util and
// node:assert are most of what loading dbus-native's marshalling costs a short process.
"use strict";

function inspect(value, options) {
  return require("node:util").inspect(value, options);
}
inspect.custom = Symbol.for("nodejs.util.inspect.custom");

module.exports = { inspect };
