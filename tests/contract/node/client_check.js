// Drives faultlab's Toxiproxy-compatible API with the real npm toxiproxy-node-client.
// Usage: node client_check.js API_URL ECHO_HOST:PORT [--toxiproxy]
// --toxiproxy: the server is a real toxiproxy-server (faultlab's own steps are left out).
// Prints one JSON line per step; exits 1 on the first failure (message on stderr).
"use strict";

const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const [apiUrl, echo, mode] = process.argv.slice(2);
const faultlab = mode !== "--toxiproxy";
const watchdog = setTimeout(() => {
  console.error("client_check: timed out after 60 s");
  process.exit(2);
}, 60000);
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

// What a connection through `listen` sees within `waitMs`: the bytes echoed, and how it ended.
function exchange(listen, payload, waitMs) {
  const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port }, () => sock.write(payload));
    let data = "";
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data, how });
    };
    const timer = setTimeout(() => finish("open"), waitMs);
    sock.on("data", (d) => {
      data += d.toString();
      if (data.length >= payload.length) finish("echoed");
    });
    sock.on("end", () => finish("closed"));
    sock.on("error", (e) => finish(e.code === "ECONNRESET" ? "reset" : `error ${e.code}`));
  });
}

// Every Toxiproxy toxic through the client's own calls (its TestHelper's createToxic body,
// toxic.update, toxic.remove), with the attribute values its spec and README use.
const TOXICS = [
  {
    type: "latency", attributes: { latency: 1000, jitter: 100 }, update: { latency: 12345, jitter: 42 },
    check: (r, ms) => r.how === "echoed" && ms >= 850,
  },
  { type: "bandwidth", attributes: { rate: 1000 }, update: { rate: 2000 }, check: (r) => r.how === "echoed" },
  { type: "slow_close", attributes: { delay: 1000 }, update: { delay: 10 }, check: (r) => r.how === "echoed" },
  // timeout drops the data and closes after 5 s without any: nothing comes back at first
  { type: "timeout", attributes: { timeout: 5 * 1000 }, update: { timeout: 0 }, check: (r) => r.how === "open" && r.data === "" },
  {
    // the client's own slicer case: size_variation equal to average_size (Toxiproxy takes it)
    type: "slicer", attributes: { average_size: 1000, delay: 1000, size_variation: 1000 },
    update: { average_size: 10, size_variation: 10 }, check: (r) => r.how === "echoed",
  },
  { type: "reset_peer", attributes: { timeout: 1000 }, update: { timeout: 10 }, check: (r) => r.how === "reset" },
  {
    type: "limit_data", attributes: { bytes: 42 }, update: { bytes: 43 },
    check: (r) => r.how === "closed" && r.data.length <= 42,
  },
  { type: "noop", attributes: {}, update: {}, check: (r) => r.how === "echoed" },
];

async function everyToxic(toxiproxy, echo) {
  const proxy = await toxiproxy.createProxy({ name: "node-toxics", listen: "127.0.0.1:0", upstream: echo });
  const payload = "x".repeat(3000);
  for (const spec of TOXICS) {
    const toxic = await proxy.addToxic({ attributes: spec.attributes, type: spec.type });
    assert.equal(toxic.name, `${spec.type}_downstream`);
    assert.equal(toxic.toxicity, 1);
    for (const [key, value] of Object.entries(spec.attributes)) {
      assert.equal(toxic.attributes[key], value, `${spec.type}.${key}`);
    }
    const start = Date.now();
    const seen = await exchange(proxy.listen, payload, spec.type === "latency" ? 4000 : 1500);
    const elapsed = Date.now() - start;
    assert.ok(spec.check(seen, elapsed), `${spec.type}: ${seen.how} with ${seen.data.length} bytes after ${elapsed} ms`);
    const updated = await toxic.update({ attributes: spec.update });
    assert.deepEqual(updated.attributes, { ...spec.attributes, ...spec.update }, spec.type);
    const listed = await proxy.getToxic(toxic.name);
    assert.deepEqual(listed.toJson(), updated.toJson());
    await updated.remove();
    await expectStatus(proxy.getToxic(toxic.name), 404);
    assert.equal((await exchange(proxy.listen, payload, 3000)).how, "echoed", `${spec.type} removed`);
    step("toxic", { type: spec.type, seen: seen.how, bytes: seen.data.length, elapsed });
  }
  await proxy.remove();
}

// faultlab's proxy options: createProxy posts its body as given, so the extra keys pass
// through; the `faultlab` toxic sets them on a proxy that already exists.
async function faultlabOptions(toxiproxy, echo) {
  const framed = await toxiproxy.createProxy({
    name: "node-framed", listen: "127.0.0.1:0", upstream: echo, framing: "lines",
  });
  const drop = await framed.addToxic({ type: "drop", stream: "upstream", attributes: { probability: 1 } });
  assert.equal(drop.type, "drop");
  assert.equal((await exchange(framed.listen, "gone\n", 300)).how, "open");
  await framed.remove();

  const later = await toxiproxy.createProxy({ name: "node-later", listen: "127.0.0.1:0", upstream: echo });
  await expectStatus(later.addToxic({ type: "drop", attributes: { probability: 1 } }), 400);
  const settings = await later.addToxic({ type: "faultlab", attributes: { framing: "lines" } });
  assert.equal(settings.type, "faultlab");
  assert.equal(settings.attributes.framing, "lines");
  assert.equal((await toxiproxy.get("node-later")).listen, later.listen);
  assert.equal((await exchange(later.listen, "kept\n", 3000)).data, "kept\n");
  await later.addToxic({ type: "drop", stream: "upstream", attributes: { probability: 1 } });
  assert.equal((await exchange(later.listen, "gone\n", 300)).how, "open");
  await later.remove();
  step("faultlabOptions", {});
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

  await everyToxic(toxiproxy, echo);
  if (faultlab) await faultlabOptions(toxiproxy, echo);

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
