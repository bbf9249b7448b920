// The demo app's endpoints served by Node's cluster module: the anchor that the
// prefork comparison in bench/worker/bench.py measures corescale against.
// WORKERS processes share one port; on Linux the primary accepts and hands the
// connections out round-robin (cluster.SCHED_RR, Node's default there).
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const workers = parseInt(process.env.WORKERS || '2', 10);
const port = parseInt(process.env.PORT || '8080', 10);
const host = process.env.HOST || '127.0.0.1';

function burn(ms) {
  // CPU time of this process, like time.thread_time() in the Python handler.
  const start = process.cpuUsage();
  let rounds = 0;
  for (;;) {
    rounds += 1;
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return rounds;
  }
}

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i += 1) cluster.fork();
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  http
    .createServer((req, res) => {
      const url = new URL(req.url, 'http://localhost');
      if (url.pathname === '/') {
        res.end('Hello from corescale\n');
      } else if (url.pathname === '/cpu') {
        const ms = parseInt(url.searchParams.get('ms') || '0', 10);
        const rounds = burn(ms);
        res.end(`burned ${ms} ms of CPU (${rounds} rounds)\n`);
      } else if (url.pathname === '/pid') {
        res.end(`${process.pid}\n`);
      } else {
        res.statusCode = 404;
        res.end('not found\n');
      }
    })
    .listen(port, host);
}
