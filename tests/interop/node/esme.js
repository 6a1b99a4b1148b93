// A node-smpp 0.5.1 ESME for tests/interop/test_node_smpp.py.
//
// Reads a scenario as JSON on stdin, runs it against the bridge and prints one JSON
// report on stdout: what node-smpp itself parsed from every PDU the bridge sent.
//
// Scenario: {host, port, system_id, password,
//            messages: [submit_sm fields; short_message is a string node-smpp encodes],
//            receipts: how many receipts (deliver_sm, esm_class 0x04) to wait for,
//            server_enquire_links: how many of the bridge's enquire_link PDUs to wait for,
//            answer_enquire_link: answer them (node-smpp itself never does),
//            timeout_ms}
// Flow: bind_transceiver, submit_sm each message, wait for the receipts (answering
// each deliver_sm), wait for the bridge's enquire_links, enquire_link, unbind. An
// unbind from the bridge is answered and ends the run (report.server_unbinds).
'use strict';

const smpp = require('smpp');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (chunk) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

// Only JSON-friendly values: Buffers as hex, node-smpp's decoded message objects as they are.
function plain(value) {
  if (Buffer.isBuffer(value)) {
    return { hex: value.toString('hex') };
  }
  if (Array.isArray(value)) {
    return value.map(plain);
  }
  if (value && typeof value === 'object') {
    const out = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = plain(inner);
    }
    return out;
  }
  return value;
}

function fields(pdu) {
  const out = { command: pdu.command, command_status: pdu.command_status, sequence_number: pdu.sequence_number };
  for (const [key, value] of Object.entries(pdu)) {
    if (!(key in out) && key !== 'command_length' && key !== 'command_id') {
      out[key] = plain(value);
    }
  }
  return out;
}

async function main() {
  const scenario = JSON.parse(await readStdin());
  const report = {
    bind: null,
    bind_sent: null,
    submits: [],
    deliver_sms: [],
    server_enquire_links: 0,
    server_unbinds: 0,
    enquire_link_resp: null,
    unbind_resp: null,
    closed_early: false,
    errors: [],
  };
  const waiters = [];
  let unbinding = false;

  const session = smpp.connect({ host: scenario.host || '127.0.0.1', port: scenario.port });
  const deadline = setTimeout(() => finish('timeout'), scenario.timeout_ms || 15000);

  function check() {
    for (const waiter of waiters.slice()) {
      if (waiter.condition()) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }
  function until(condition) {
    return new Promise((resolve) => {
      waiters.push({ condition, resolve });
      check();
    });
  }
  function request(command, params) {
    return new Promise((resolve) => {
      const sent = session[command](params, (pdu) => resolve(pdu));
      if (!sent) {
        report.errors.push(`${command}: socket not writable`);
        resolve(null);
      }
    });
  }
  function finish(reason) {
    clearTimeout(deadline);
    if (reason) {
      report.errors.push(reason);
    }
    process.stdout.write(JSON.stringify(report) + '\n');
    session.destroy();
    process.exit(0);
  }

  session.on('error', (error) => report.errors.push(`socket error: ${error.message}`));
  session.on('close', () => {
    if (!unbinding) {
      report.closed_early = true;
      finish('connection closed by the bridge');
    }
  });
  session.on('deliver_sm', (pdu) => {
    report.deliver_sms.push(fields(pdu));
    session.send(pdu.response());
    check();
  });
  session.on('enquire_link', (pdu) => {
    // node-smpp leaves the answer to the application.
    report.server_enquire_links += 1;
    if (scenario.answer_enquire_link) {
      session.send(pdu.response());
    }
    check();
  });
  session.on('unbind', (pdu) => {
    report.server_unbinds += 1;
    unbinding = true;
    session.send(pdu.response(), () => finish(null));
  });

  await new Promise((resolve) => session.on('connect', resolve));
  const bind = { system_id: scenario.system_id, password: scenario.password };
  report.bind_sent = { interface_version: new smpp.PDU('bind_transceiver', bind).interface_version };
  const bindResp = await request('bind_transceiver', bind);
  report.bind = fields(bindResp);
  if (bindResp.command_status !== 0) {
    finish('bind refused');
    return;
  }
  for (const message of scenario.messages || []) {
    const resp = await request('submit_sm', message);
    report.submits.push(fields(resp));
  }
  const receipts = () => report.deliver_sms.filter((pdu) => pdu.esm_class & 0x04).length;
  await until(() => receipts() >= (scenario.receipts || 0));
  await until(() => report.server_enquire_links >= (scenario.server_enquire_links || 0));
  report.enquire_link_resp = fields(await request('enquire_link', {}));
  unbinding = true;
  report.unbind_resp = fields(await request('unbind', {}));
  finish(null);
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ errors: [`driver failed: ${error.stack}`] }) + '\n');
  process.exit(1);
});
