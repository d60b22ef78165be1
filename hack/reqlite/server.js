#!/usr/bin/env node
// Starts reqlite, a JavaScript server that speaks RethinkDB's driver protocol,
// for GuildNet's dev environment and tests. Production uses RethinkDB itself.
//
// Usage: node server.js [--host 127.0.0.1] [--port 0]
// Prints "reqlite listening on HOST:PORT" on stdout once it accepts
// connections (port 0 picks a free port, so parallel tests never collide).
'use strict';

const net = require('net');
const path = require('path');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`reqlite: --port must be a number from 0 to 65535, got "${arg('port')}"`);
  process.exit(2);
}

const lib = path.join(path.dirname(require.resolve('reqlite/package.json')), 'lib');
const Connection = require(path.join(lib, 'connection.js'));
const Server = require(path.join(lib, 'index.js'));

// reqlite appends "==" to an already padded base64 salt. Drivers with a strict
// base64 decoder (rethinkdb-go) reject the handshake, so send the salt
// re-encoded. The server keeps using its own copy for the proof.
Connection.prototype.getAuthentication = function () {
  const salt = Buffer.from(this.salt, 'base64').toString('base64');
  return 'r=' + this.getFullNonce() + ',s=' + salt + ',i=' + this.iterations;
};

// reqlite answers between() on a primary key by evaluating the key function,
// one promise per document, over the whole table. RethinkDB reads a range of
// the primary index instead, and GuildNet tails its revision log with exactly
// this query after every write, so with reqlite each write grew slower as the
// log grew. Compare the keys directly: the same documents in the same
// selection, without the per-document evaluation.
const Table = require(path.join(lib, 'table.js'));
const Selection = require(path.join(lib, 'selection.js'));
const util = require(path.join(lib, 'utils.js'));
const Bluebird = require(require.resolve('bluebird', { paths: [lib] }));
const between = Table.prototype.between;
Table.prototype.between = function (left, right, options, query, internalOptions) {
  const pk = this.options.primaryKey;
  if (options === null || typeof options !== 'object' || (typeof options.index === 'string' && options.index !== pk)) {
    return between.apply(this, arguments);
  }
  options.index = pk;
  const selection = new Selection([], this, {
    type: 'TABLE_SLICE',
    operation: 'between',
    index: pk,
    args: { left: left, right: right },
    options: { left_bound: options.left_bound || 'closed', right_bound: options.right_bound || 'open' },
  });
  for (const key of Object.keys(this.documents)) {
    const doc = this.documents[key];
    util.between(selection, doc, doc.doc[pk], left, right, options);
  }
  return Bluebird.resolve(selection);
};

// reqlite listens on every interface and cannot take port 0; bind where we were
// told instead, and report the port the kernel chose.
const listen = net.Server.prototype.listen;
let server;
net.Server.prototype.listen = function (_port, cb) {
  server = this;
  this.once('listening', () => {
    const a = this.address();
    process.stdout.write(`reqlite listening on ${host.includes(':') ? '[' + host + ']' : host}:${a.port}\n`);
  });
  this.once('error', (err) => {
    console.error(`reqlite: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  });
  return listen.call(this, port, host, cb);
};

// A non-zero "driver-port" keeps reqlite from substituting its default 28015.
new Server({ 'driver-port': 1, silent: true });

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (server) server.close();
    process.exit(0);
  });
}
