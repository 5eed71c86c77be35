// What dbus-native's marshall.js takes from node:assert, without loading node:assert: the call
// assert(value), which returns for a truthy value and hands anything else to the real assert,
// loaded then, so that what is thrown is node:assert's own AssertionError. Bundled in place of
// "assert" for dbus-native's files only (build/compile.ts; see util.cjs beside it).
"use strict";

module.exports = function assert(value, message) {
  if (value) return;
  require("node:assert")(value, message);
};
