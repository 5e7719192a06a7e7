// Interop listener built on Microsoft's own `hyco-ws` npm package (Azure Relay Hybrid
// Connections). It exists to prove that code nobody on this project wrote can listen
// through our relay emulator: the SDK builds the listen URI, signs the SAS token and
// handles the control channel and `accept` rendezvous itself; we only point it at
// --endpoint instead of wss://NS:443.
//
//   node listener.js --endpoint ws://127.0.0.1:9350 --namespace test.servicebus.windows.net \
//     --path hc1 --key-name root --key secretkey
//
// Prints `ready` once the control channel is open; echoes every text message received
// on an accepted connection as {"echo": text, "by": "hyco-ws"}. SIGTERM closes and exits 0.
'use strict';

const WebSocket = require('hyco-ws');
const { parseArgs, rebase } = require('./common');

const args = parseArgs(['endpoint', 'namespace', 'path', 'key-name', 'key']);

// Exactly as the SDK does it: the token is signed over the SDK-built wss://NS:443 URI
// (createRelayToken turns it into http://NS:443/HC) and is sent in the
// ServiceBusAuthorization header. A function (not a string) makes the SDK renew it hourly.
const sdkUri = WebSocket.createRelayListenUri(args.namespace, args.path);
const token = () => WebSocket.createRelayToken(sdkUri, args['key-name'], args.key);

const server = WebSocket.createRelayedServer(
  { server: rebase(sdkUri, args.endpoint), token },
  (ws) => {
    ws.on('message', (data, flags) => {
      if (flags && flags.binary) return; // only text frames are echoed
      ws.send(JSON.stringify({ echo: String(data), by: 'hyco-ws' }), (err) => {
        if (err) console.error(`listener: send failed: ${err.message || err}`);
      });
    });
    ws.on('error', (err) => console.error(`listener: rendezvous error: ${err.message || err}`));
  }
);

// 'listening' is emitted from the control channel's onopen.
let ready = false;
server.on('listening', () => {
  if (!ready) process.stdout.write('ready\n');
  ready = true;
});

// hyco-ws 1.0.5 reconnects from BOTH onerror and onclose with no backoff, so every failed
// handshake doubles the number of pending reconnects. Bail out instead of storming the
// emulator: fail if we never got in, or if errors keep coming after we did.
let errors = 0;
server.on('error', (err) => {
  console.error(`listener: control channel error: ${err.message || err}`);
  if (!ready || ++errors >= 5) process.exit(2);
});

function shutdown() {
  try {
    server.close();
  } catch (err) {
    console.error(`listener: close failed: ${err.message || err}`);
  }
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
