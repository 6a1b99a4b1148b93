// The bridge to beat (issue "Speed"): a node-smpp 0.5.1 server that forwards every
// submit_sm as one HTTP POST over a keep-alive http.Agent and answers the
// submit_sm_resp after the HTTP response, with the provider's id as message_id.
// No store, no receipts: the smallest thing that does the job.
//
//   NODE_PATH=tests/interop/node/node_modules node tests/bench/node_bridge.js 2795 http://127.0.0.1:18099/API
const smpp = require('smpp');
const http = require('http');

const port = parseInt(process.argv[2] || '2795', 10);
const upstream = new URL(process.argv[3] || 'http://127.0.0.1:18099/API');
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function forward(pdu, done) {
  const body = JSON.stringify({
    action: 'sendsms',
    'message-text': pdu.short_message.message || '',
    to: pdu.destination_addr,
    from: '60856',
  });
  const request = http.request({
    agent, host: upstream.hostname, port: upstream.port, path: upstream.pathname, method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'x-api-key': 'k' },
  }, (response) => {
    const chunks = [];
    response.on('data', (chunk) => chunks.push(chunk));
    response.on('end', () => {
      try {
        const answer = JSON.parse(Buffer.concat(chunks).toString());
        done(answer.status === 'Success' ? 0 : 0x45, answer['tracking-id'] || '');
      } catch (e) {
        done(0x08, '');
      }
    });
  });
  request.on('error', () => done(0x08, ''));
  request.end(body);
}

const server = smpp.createServer((session) => {
  session.on('bind_transceiver', (pdu) => {
    session.pause();
    session.send(pdu.response({ system_id: 'NODEBRIDGE' }));
    session.resume();
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
  session.on('deliver_sm_resp', () => {});
  session.on('submit_sm', (pdu) => {
    forward(pdu, (status, messageId) => {
      session.send(pdu.response({ command_status: status, message_id: messageId }));
    });
  });
  session.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => console.log(`node bridge on ${port} -> ${upstream}`));
