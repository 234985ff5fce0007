#!/usr/bin/env node
// Driver for the client and worker of npm gearmanode 0.9 (veny/GearmaNode), written as its
// README shows: gearmanode.client({host, port}).submitJob(name, payload, {background,
// priority, unique}) and the job's events (created, workData, status, complete, failed,
// exception, error); gearmanode.worker({host, port}).addFunction(name, fn) where fn answers
// with job.workComplete, job.reportError, job.reportStatus and job.sendWorkData. The
// command-line contract: conformance/drivers/README.md; the package is found through
// NODE_PATH (.peers/node/node_modules).
//
// gearmanode asks winston (">=0.7.1") for its loggers, and npm resolves that to winston 3,
// where they have no transport: every log line becomes a "[winston] Attempt to write logs
// with no transports" warning on stderr. The driver silences the library's loggers (its
// README's Logger section configures them the same way, through winston).
'use strict'

let gearmanode, winston
try {
  winston = require('winston')
  winston.configure({ silent: true }) // gearmanode logs through winston's default logger on load
  gearmanode = require('gearmanode')
} catch (err) {
  process.stderr.write('gearmanode_driver: cannot load gearmanode (npm install gearmanode@0.9.2; set NODE_PATH)\n')
  process.exit(1)
}
for (const name of ['Client', 'Worker', 'JobServer', 'Job', 'LBStrategy', 'protocol']) {
  winston.loggers.get(name).silent = true
}

const args = process.argv.slice(2)
const role = args.shift()
const o = { priority: 'normal', data: '', timeout: null, unique: null, background: false, exceptions: false, count: null }
for (let i = 0; i < args.length; i++) {
  const name = args[i]
  if (!name.startsWith('--')) fail(1, `gearmanode_driver: unexpected argument ${name}`)
  const key = name.slice(2)
  if (key === 'background' || key === 'exceptions') { o[key] = true; continue }
  if (i + 1 >= args.length) fail(1, `gearmanode_driver: ${name} needs a value`)
  o[key] = args[++i]
}
if (!['client', 'worker'].includes(role) || !o.host || !o.port || !o.function ||
    !['high', 'normal', 'low'].includes(o.priority)) {
  fail(1, 'usage: gearmanode_driver.js client|worker --host H --port P --function F [options]')
}
if (o['tls-ca']) fail(5, 'unsupported: TLS (gearmanode has no TLS)')

function fail (code, message) {
  if (message) process.stderr.write(message + '\n')
  process.exit(code)
}

const timeout = parseFloat(o.timeout === null ? (role === 'client' ? '10' : '60') : o.timeout)
setTimeout(() => fail(6, `timed out after ${timeout}s`), Math.round(timeout * 1000)).unref()
const server = { host: o.host, port: parseInt(o.port, 10) }

function watch (party) {
  party.on('socketError', (uid, err) => fail(2, `connection error: ${uid}: ${err.message}`))
  // The driver never closes its side first, so any disconnect is a lost connection; gearmanode
  // passes no Error when the server ends it cleanly (job-server.js: the socket's 'end' handler).
  party.on('socketDisconnect', (uid, err) => fail(2, `connection lost: ${uid}${err ? ': ' + (err.message || err) : ''}`))
  party.on('jobServerError', (uid, code, message) => fail(2, `server error: ${code} ${message}`))
  party.on('error', (err) => fail(2, `error: ${err.message}`))
}

if (role === 'client') {
  const client = gearmanode.client(server)
  watch(client)
  if (o.exceptions) client.jobServers[0].setOption('exceptions')
  const options = { background: o.background, priority: o.priority.toUpperCase() }
  if (o.unique !== null) options.unique = o.unique
  const job = client.submitJob(o.function, Buffer.from(o.data, 'utf8'), options)
  job.on('error', (err) => fail(2, `error: ${err.message}`))
  if (o.background) {
    job.on('created', () => process.stdout.write(job.handle + '\n', () => process.exit(0)))
  } else {
    job.on('workData', (data) => process.stderr.write(`data: ${data}\n`))
    job.on('status', (status) => process.stderr.write(`status: ${status.percent_done_num}/${status.percent_done_den}\n`))
    job.on('warning', (data) => process.stderr.write(`warning: ${data}\n`))
    job.on('complete', () => {
      const out = job.response === undefined ? Buffer.alloc(0) : job.response
      process.stdout.write(out, () => process.exit(0))
    })
    job.on('failed', () => fail(3))
    job.on('exception', (text) => fail(4, `exception: ${text}`))
    job.on('timeout', () => fail(6, 'the job timed out'))
  }
} else {
  const worker = gearmanode.worker(server)
  watch(worker)
  const count = o.count === null ? null : parseInt(o.count, 10)
  let done = 0
  const counted = () => {
    done += 1
    if (count !== null && done >= count) {
      // Let the answer reach the socket before leaving (Worker#close destroys the socket).
      setImmediate(() => process.exit(0))
    }
  }
  worker.addFunction(o.function, (job) => {
    const data = Buffer.from(job.payload).toString('latin1')
    if (data === 'fail') {
      job.reportError()
    } else if (data === 'status') {
      job.reportStatus(1, 2)
      job.sendWorkData('partial')
      job.workComplete('done')
    } else {
      job.workComplete(data.split('').reverse().join(''))
    }
    counted()
  })
}
