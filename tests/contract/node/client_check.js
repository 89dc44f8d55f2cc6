// Drives faultlab's Toxiproxy-compatible API with the real npm toxiproxy-node-client.
// Usage: node client_check.js API_URL ECHO_HOST:PORT
// Prints one JSON line per step; exits 1 on the first failure (message on stderr).
"use strict";

const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const [apiUrl, echo] = process.argv.slice(2);
const watchdog = setTimeout(() => {
  console.error("client_check: timed out after 30 s");
  process.exit(2);
}, 30000);
watchdog.unref();

function step(name, data) {
  console.log(JSON.stringify({ step: name, ...data }));
}

function echoThrough(listen, payload = "ping") {
  const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port }, () => sock.write(payload));
    let got = "";
    sock.setTimeout(5000, () => { sock.destroy(); reject(new Error("echo timed out")); });
    sock.on("data", (d) => {
      got += d.toString();
      if (got.length >= payload.length) { sock.end(); resolve(got); }
    });
    sock.on("error", reject);
  });
}

async function expectStatus(promise, status) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof ToxiproxyError, `not a ToxiproxyError: ${e}`);
    assert.match(e.message, new RegExp(`status code ${status}`));
    return;
  }
  assert.fail(`expected HTTP ${status}`);
}

async function main() {
  const toxiproxy = new Toxiproxy(apiUrl);

  const version = await toxiproxy.getVersion();
  assert.equal(JSON.parse(version).version, "2.12.0");
  step("version", { version });

  const proxy = await toxiproxy.createProxy({ name: "node", listen: "127.0.0.1:0", upstream: echo });
  assert.equal(proxy.name, "node");
  assert.equal(proxy.enabled, true);
  assert.ok(!proxy.listen.endsWith(":0"), `port not resolved: ${proxy.listen}`);
  assert.equal(await echoThrough(proxy.listen), "ping");
  step("createProxy", { listen: proxy.listen });

  const got = await toxiproxy.get("node");
  assert.deepEqual(got.toJson(), proxy.toJson());
  const all = await toxiproxy.getAll();
  assert.deepEqual(Object.keys(all), ["node"]);
  step("get", { all: Object.keys(all) });

  const toxic = await proxy.addToxic({
    type: "latency", stream: "upstream", toxicity: 1, attributes: { latency: 100, jitter: 5 },
  });
  assert.equal(toxic.name, "latency_upstream");
  assert.deepEqual(toxic.attributes, { latency: 100, jitter: 5 });
  const start = Date.now();
  await echoThrough(proxy.listen);
  const elapsed = Date.now() - start;
  assert.ok(elapsed >= 90, `latency not applied (${elapsed} ms)`);
  step("addToxic", { toxic: toxic.toJson(), elapsed });

  const fetched = await proxy.getToxic("latency_upstream");
  assert.deepEqual(fetched.toJson(), toxic.toJson());
  const updated = await fetched.update({ attributes: { latency: 10 } });
  assert.deepEqual(updated.attributes, { latency: 10, jitter: 5 });
  step("updateToxic", { attributes: updated.attributes });

  const off = await proxy.update({ enabled: false, listen: proxy.listen, upstream: echo });
  assert.equal(off.enabled, false);
  const on = await proxy.update({ enabled: true, listen: proxy.listen, upstream: echo });
  assert.equal(on.listen, proxy.listen);
  assert.equal(await echoThrough(on.listen, "back"), "back");
  step("update", { listen: on.listen });

  await updated.remove();
  await expectStatus(proxy.getToxic("latency_upstream"), 404);
  step("removeToxic", {});

  const populated = await toxiproxy.populate([
    { name: "node", listen: proxy.listen, upstream: echo, enabled: true },
    { name: "node2", listen: "127.0.0.1:0", upstream: echo, enabled: true },
  ]);
  assert.deepEqual(Object.keys(populated).sort(), ["node", "node2"]);
  assert.equal(populated.node.listen, proxy.listen);
  step("populate", { names: Object.keys(populated) });

  await expectStatus(toxiproxy.createProxy({ name: "node", listen: "127.0.0.1:0", upstream: echo }), 409);
  await expectStatus(toxiproxy.get("ghost"), 404);
  await expectStatus(proxy.addToxic({ type: "down", attributes: {} }), 400);
  step("errors", {});

  await toxiproxy.reset();
  await proxy.remove();
  await populated.node2.remove();
  await expectStatus(toxiproxy.get("node"), 404);
  assert.deepEqual(Object.keys(await toxiproxy.getAll()), []);
  step("remove", {});
}

main().then(
  () => { step("done", {}); },
  (e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); },
);
