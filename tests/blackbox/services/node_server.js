// A tiny Node.js http server for black-box tests: node node_server.js PORT [HOST]
//   GET /health      -> 200 {"status":"ok"}
//   GET /items/<id>  -> 200 {"id":<id>,"name":"item-<id>","server":"node"}
//   anything else    -> 404
"use strict";
const http = require("http");

const port = Number(process.argv[2] || process.env.PORT);
const host = process.argv[3] || "127.0.0.1";

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const item = /^\/items\/(\d+)$/.exec(req.url);
  if (req.method === "GET" && req.url === "/health") {
    send(200, { status: "ok" });
  } else if (req.method === "GET" && item) {
    const id = Number(item[1]);
    send(200, { id, name: `item-${id}`, server: "node" });
  } else {
    send(404, { error: "not found" });
  }
});

server.listen(port, host);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
