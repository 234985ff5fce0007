#!/usr/bin/env node
// Driver for the client and worker of npm node-gearman 0.2 (andris9/node-gearman), written as
// its README shows: new Gearman(host, port); gearman.submitJob(name, payload) and the job's
// events (data, end, error, timeout); gearman.registerWorker(name, fn) where fn(payload,
// worker) answers with worker.write(data), worker.end(data) or worker.error(). Priorities
// and the unique id go through submitJob's other arguments (lib/gearman.js submitJob(name,
// payload, uniq, options)). The command-line contract: conformance/drivers/README.md; the
// package is found through NODE_PATH (.peers/node/node_modules).
//
// What the library cannot do (lib/gearman.js): a background job's JOB_CREATED has no
// callback, so its handle is never handed out (Job); WORK_DATA and the result both arrive as
// 'data' events (receive_WORK_DATA, receive_WORK_COMPLETE); WORK_STATUS, WORK_EXCEPTION and
// ERROR have no handler (or one that only logs in debug mode: receive_ERROR); it never sends
// OPTION_REQ; its worker cannot send WORK_STATUS. A closed connection fails every job with the
// same "Job failed" error as WORK_FAIL (closeConnection), after setting `connected` to false,
// which is how the driver tells the two apart.
'use strict'

let Gearman
try {
  Gearman = require('node-gearman')
} catch (err) {
  process.stderr.write('node_gearman_driver: cannot load node-gearman (npm install node-gearman@0.2.2; set NODE_PATH)\n')
  process.exit(1)
}

const args = process.argv.slice(2)
const role = args.shift()
const o = { priority: 'normal', data: '', timeout: null, unique: null, background: false, exceptions: false, count: null }
for (let i = 0; i < args.length; i++) {
  const name = args[i]
  if (!name.startsWith('--')) fail(1, `node_gearman_driver: unexpected argument ${name}`)
  const key = name.slice(2)
  if (key === 'background' || key === 'exceptions') { o[key] = true; continue }
  if (i + 1 >= args.length) fail(1, `node_gearman_driver: ${name} needs a value`)
  o[key] = args[++i]
}
if (!['client', 'worker'].includes(role) || !o.host || !o.port || !o.function ||
    !['high', 'normal', 'low'].includes(o.priority)) {
  fail(1, 'usage: node_gearman_driver.js client|worker --host H --port P --function F [options]')
}
if (o['tls-ca']) fail(5, 'unsupported: TLS (node-gearman has no TLS)')

function fail (code, message) {
  if (message) process.stderr.write(message + '\n')
  process.exit(code)
}

const timeout = parseFloat(o.timeout === null ? (role === 'client' ? '10' : '60') : o.timeout)
setTimeout(() => fail(6, `timed out after ${timeout}s`), Math.round(timeout * 1000)).unref()

const gearman = new Gearman(o.host, parseInt(o.port, 10))
gearman.on('error', (err) => fail(2, `connection error: ${err.message}`))
gearman.on('close', () => fail(2, 'connection lost: the server closed the connection'))

if (role === 'client') {
  if (o.background) {
    fail(5, 'unsupported: background jobs (node-gearman never hands out their handle: lib/gearman.js Job passes no JOB_CREATED callback)')
  }
  if (o.exceptions) {
    process.stderr.write('note: node-gearman cannot ask for the exceptions option: WORK_EXCEPTION arrives as WORK_FAIL\n')
  }
  const options = o.priority === 'normal' ? {} : { priority: o.priority }
  const job = gearman.submitJob(o.function, Buffer.from(o.data, 'utf8'), o.unique, options)
  const chunks = []
  job.on('data', (data) => chunks.push(Buffer.from(data)))
  job.on('end', () => process.stdout.write(Buffer.concat(chunks), () => process.exit(0)))
  job.on('error', (err) => {
    if (!gearman.connected) fail(2, `connection lost: ${err.message}`)
    fail(3)
  })
  job.on('timeout', () => fail(6, 'the job timed out'))
} else {
  const count = o.count === null ? null : parseInt(o.count, 10)
  let done = 0
  const flushed = () => {
    // The library writes its queued commands one by one (sendCommandToServer); leave once the
    // answer and the next GRAB_JOB are written.
    if (gearman.processing || gearman.commandQueue.length) return setImmediate(flushed)
    process.exit(0)
  }
  gearman.registerWorker(o.function, (payload, worker) => {
    const data = Buffer.from(payload || '').toString('latin1')
    if (data === 'fail') {
      worker.error()
    } else if (data === 'status') {
      process.stderr.write('unsupported: WORK_STATUS (node-gearman workers can only write WORK_DATA)\n')
      worker.error()
    } else {
      worker.end(Buffer.from(data.split('').reverse().join(''), 'latin1'))
    }
    done += 1
    if (count !== null && done >= count) setImmediate(flushed)
  })
  gearman.connect()
}
