// The calc gRPC service (faultlab/examples/protos/calc_v1.proto) on @grpc/grpc-js, for
// black-box tests: node server.js PORT [HOST] [PROTO]
//
// The .proto is loaded at run time with @grpc/proto-loader (google/protobuf/empty.proto and
// struct.proto come from the copies protobufjs bundles). Every call it handles is logged to
// stdout as one line "call <Method>", so a test can count what reached the server (a call
// answered by the proxy never does). Methods the .proto does not declare are ignored, so the
// server runs against older versions of the file. SIGTERM: a graceful shutdown, forced
// after 2 s.
"use strict";
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const port = Number(process.argv[2] || process.env.PORT);
const host = process.argv[3] || "127.0.0.1";
const protoFile =
  process.argv[4] ||
  path.resolve(__dirname, "../../../../faultlab/examples/protos/calc_v1.proto");

const MAX_COUNT = 10000000;
const MAX_DELAY_MS = 10000;

const definition = protoLoader.loadSync(protoFile, {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [path.dirname(protoFile)],
});
const calc = grpc.loadPackageDefinition(definition).faultlab.calc.v1.Calc;

const log = (line) => process.stdout.write(line + "\n");
const num = (value) => Number(value || 0);
const invalid = (details) => ({ code: grpc.status.INVALID_ARGUMENT, details });

// The counter: idempotency keys return the first result and change nothing.
const counter = { value: 0, byKey: new Map(), effects: [] };

const handlers = {
  Add(call, callback) {
    callback(null, { value: num(call.request.a) + num(call.request.b) });
  },
  Div(call, callback) {
    const b = num(call.request.b);
    if (b === 0) return callback(invalid("division by zero"));
    callback(null, { value: num(call.request.a) / b });
  },
  Echo(call, callback) {
    callback(null, call.request);
  },
  Sleep(call, callback) {
    const ms = num(call.request.ms);
    setTimeout(() => callback(null, { ms }), Math.min(Math.max(ms, 0), 60000));
  },
  About(call, callback) {
    callback(null, { service: "calc", version: 1 });
  },
  CounterIncr(call, callback) {
    const amount = call.request.amount === undefined ? 1 : num(call.request.amount);
    const key = call.request.key;
    if (key !== undefined && counter.byKey.has(key)) {
      return callback(null, { value: counter.byKey.get(key) });
    }
    counter.value += amount;
    const effect = { amount, value: counter.value };
    if (key !== undefined) {
      effect.key = key;
      counter.byKey.set(key, counter.value);
    }
    counter.effects.push(effect);
    callback(null, { value: counter.value });
  },
  CounterGet(call, callback) {
    callback(null, { value: counter.value });
  },
  CounterEffects(call, callback) {
    callback(null, { effects: counter.effects });
  },
  CounterReset(call, callback) {
    counter.value = 0;
    counter.byKey.clear();
    counter.effects = [];
    callback(null, { value: 0 });
  },
  // Item{index, value = index * index} for index in [start, n), delay_ms apart; waits for
  // 'drain' when the stream's buffer is full, stops when the call is cancelled.
  async Count(call) {
    const start = num(call.request.start);
    const n = num(call.request.n);
    const delay = num(call.request.delay_ms);
    if (n > MAX_COUNT) return call.emit("error", invalid(`count: n=${n} is above ${MAX_COUNT}`));
    if (!(delay >= 0 && delay <= MAX_DELAY_MS)) {
      return call.emit("error", invalid(`count: delay_ms=${delay} is not in [0, ${MAX_DELAY_MS}]`));
    }
    let cancelled = false;
    let wake = () => {};
    call.on("cancelled", () => {
      cancelled = true;
      wake();
    });
    const pause = (resolveOn) =>
      new Promise((resolve) => {
        wake = resolve;
        resolveOn(resolve);
      });
    for (let index = start; index < n && !cancelled; index++) {
      if (index > start && delay) await pause((resolve) => setTimeout(resolve, delay));
      if (cancelled) return;
      if (!call.write({ index, value: index * index })) {
        await pause((resolve) => call.once("drain", resolve));
      }
    }
    if (!cancelled) call.end();
  },
  Sum(call, callback) {
    let total = 0;
    call.on("data", (item) => {
      total += num(item.value);
    });
    call.on("end", () => callback(null, { value: total }));
  },
  Chat(call) {
    call.on("data", (item) => call.write({ index: num(item.index), value: num(item.value) }));
    call.on("end", () => call.end());
  },
};

// Only the methods this version of the .proto declares, each logged as it is called.
const implementation = {};
for (const [name, handler] of Object.entries(handlers)) {
  if (!(name in calc.service)) continue;
  implementation[name] = (call, callback) => {
    log(`call ${name}`);
    return handler(call, callback);
  };
}

const server = new grpc.Server();
server.addService(calc.service, implementation);
server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`cannot listen on ${host}:${port}: ${err.message}\n`);
    process.exit(1);
  }
  const version = require("@grpc/grpc-js/package.json").version;
  log(`node grpc calc listening on ${host}:${bound} (grpc-js ${version})`);
});

process.on("SIGTERM", () => {
  const force = setTimeout(() => {
    server.forceShutdown();
    process.exit(0);
  }, 2000);
  server.tryShutdown(() => {
    clearTimeout(force);
    process.exit(0);
  });
});
