// Interop sender built on Microsoft's own `hyco-ws` npm package (Azure Relay Hybrid
// Connections). It exists to prove that code nobody on this project wrote can connect
// through our relay emulator: the SDK builds the connect URI, signs the SAS token and
// performs the handshake (relayedConnect); we only point it at --endpoint instead of
// wss://NS:443.
//
//   node sender.js --endpoint ws://127.0.0.1:9350 --namespace test.servicebus.windows.net \
//     --path hc1 --key-name root --key secretkey --message hello [--timeout-ms 10000]
//
// Sends --message as one text frame and prints the first reply (verbatim, one line).
// Exit codes: 0 ok, 2 handshake/connection failure, 3 timeout.
'use strict';

const WebSocket = require('hyco-ws');
const { parseArgs, rebase } = require('./common');

const args = parseArgs(['endpoint', 'namespace', 'path', 'key-name', 'key', 'message'], { 'timeout-ms': '10000' });

// Exactly as the SDK's own sample does it: sign the SDK-built wss://NS:443 URI
// (createRelayToken turns it into http://NS:443/HC); relayedConnect puts the token in
// the ServiceBusAuthorization header.
const sdkUri = WebSocket.createRelaySendUri(args.namespace, args.path);
const token = WebSocket.createRelayToken(sdkUri, args['key-name'], args.key);

function fail(code, msg) {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(code);
}

const timer = setTimeout(() => fail(3, `timeout after ${args['timeout-ms']} ms`), Number(args['timeout-ms']));

const ws = WebSocket.relayedConnect(rebase(sdkUri, args.endpoint), token, (client) => {
  client.send(args.message);
});

// ws 1.x: with an 'unexpected-response' listener we get the HTTP status instead of a
// bare "unexpected server response (N)" error (ws then emits 'close' at once; ignore it).
let rejected = false;
ws.on('unexpected-response', (req, res) => {
  rejected = true;
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => { body += chunk; });
  res.on('end', () => {
    const extra = body.trim() && body.trim() !== res.statusMessage ? ` (${body.trim()})` : '';
    fail(2, `${res.statusCode} ${res.statusMessage}${extra}`);
  });
  res.on('error', () => fail(2, `${res.statusCode} ${res.statusMessage}`));
});
ws.on('error', (err) => fail(2, err.message || String(err)));

ws.on('message', (data) => {
  clearTimeout(timer);
  process.stdout.write(`${String(data)}\n`);
  ws.removeAllListeners('close');
  ws.on('close', () => process.exit(0));
  ws.close();
  setTimeout(() => process.exit(0), 2000).unref();
});
ws.on('close', (code) => rejected || fail(2, `connection closed before a reply (code ${code})`));
