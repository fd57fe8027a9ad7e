// The benchmarks' origin: a trivial JSON answer on every path (its own process, so the
// load generator's runs never block it).
import http from 'node:http';

const body = JSON.stringify({ userId: 'bench-user', email: 'bench@example.test', role: 'user' });
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.argv[2]), '127.0.0.1');
