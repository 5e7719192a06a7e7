// Shared bits for listener.js and sender.js: CLI parsing and endpoint rewriting.
'use strict';

// Parses `--name value` pairs; exits with usage if a required one is missing.
function parseArgs(required, defaults) {
  const args = Object.assign({}, defaults);
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(.+)$/.exec(argv[i]);
    if (!m || i + 1 >= argv.length) usage(required, `bad argument: ${argv[i]}`);
    args[m[1]] = argv[++i];
  }
  for (const name of required) {
    if (args[name] === undefined) usage(required, `missing --${name}`);
  }
  return args;
}

function usage(required, why) {
  process.stderr.write(`${why}\nusage: node ${process.argv[1]} ${required.map((n) => `--${n} V`).join(' ')}\n`);
  process.exit(64);
}

// The SDK always builds `wss://NS:443/$hc/...`. Swap only scheme+authority for the
// emulator's base URL (e.g. ws://127.0.0.1:9350) so the SDK's own path and query go out.
function rebase(sdkUri, endpoint) {
  const m = /^wss?:\/\/[^/]+(\/.*)$/.exec(sdkUri);
  if (!m) throw new Error(`unexpected SDK URI: ${sdkUri}`);
  return endpoint.replace(/\/+$/, '') + m[1];
}

module.exports = { parseArgs, rebase };
