'use strict';
// The floor of a Node `net` RESP server: one `:1` reply per command received, no parsing
// beyond counting commands, no engine. `bench/node/floor.sh` runs it beside the fencelock Node
// server and redis-server to show what Node's stream path costs before any lock work.
//   node floor.js PORT
const net = require('node:net');

const port = Number(process.argv[2]);
function commands(buffer) {
  // A RESP command starts with '*' at the start of a read or after a newline.
  let count = buffer[0] === 42 ? 1 : 0;
  for (let i = buffer.indexOf(10); i !== -1 && i < buffer.length - 1; i = buffer.indexOf(10, i + 1)) {
    if (buffer[i + 1] === 42) count += 1;
  }
  return count;
}
const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', (data) => {
    const count = commands(data);
    socket.write(count === 1 ? ':1\r\n' : ':1\r\n'.repeat(count), 'latin1');
  });
  socket.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
