#!/usr/bin/env node
// Driver for the client and worker of npm abraxas 2.x (iarna/abraxas), written as its README
// shows: Gearman.Client.connect({host, port}), client.submitJob / submitJobBg with a payload
// and a callback, client.registerWorker(func, cb) where cb returns the result or calls
// task.error(). The command-line contract: conformance/drivers/README.md; the package is
// found through NODE_PATH (.peers/node/node_modules).
//
// abraxas pipes WORK_DATA into the result stream (client-connection.js handleJobResult), so
// streamed data reaches the driver inside the result; its task 'status' event carries a
// fraction, printed as N/D only when it can be (status: F otherwise). Without the
// abraxas-server-only streaming option a worker cannot send WORK_DATA, so the "status" job
// sends WORK_STATUS and is then failed with `unsupported:` on stderr.
'use strict'

let Gearman
try {
  Gearman = require('abraxas')
} catch (err) {
  process.stderr.write('abraxas_driver: cannot load abraxas (npm install abraxas@2; set NODE_PATH)\n')
  process.exit(1)
}

const args = process.argv.slice(2)
const role = args.shift()
const o = { priority: 'normal', data: '', timeout: null, unique: null, background: false, exceptions: false, count: null }
for (let i = 0; i < args.length; i++) {
  const name = args[i]
  if (!name.startsWith('--')) fail(1, `abraxas_driver: unexpected argument ${name}`)
  const key = name.slice(2)
  if (key === 'background' || key === 'exceptions') { o[key] = true; continue }
  if (i + 1 >= args.length) fail(1, `abraxas_driver: ${name} needs a value`)
  o[key] = args[++i]
}
if (!['client', 'worker'].includes(role) || !o.host || !o.port || !o.function ||
    !['high', 'normal', 'low'].includes(o.priority)) {
  fail(1, 'usage: abraxas_driver.js client|worker --host H --port P --function F [options]')
}
if (o['tls-ca']) fail(5, 'unsupported: TLS (abraxas has no TLS)')

function fail (code, message) {
  if (message) process.stderr.write(message + '\n')
  process.exit(code)
}

const timeout = parseFloat(o.timeout === null ? (role === 'client' ? '10' : '60') : o.timeout)
setTimeout(() => fail(6, `timed out after ${timeout}s`), Math.round(timeout * 1000)).unref()

const client = Gearman.Client.connect({ host: o.host, port: parseInt(o.port, 10) })
client.on('error', (err) => fail(2, `connection error: ${err.message}`))

if (role === 'client') {
  // abraxas asks for OPTION_REQ exceptions on every connection by itself, so --exceptions needs nothing.
  const options = {}
  if (o.priority !== 'normal') options.priority = o.priority
  if (o.unique !== null) options.uniqueid = o.unique
  const payload = Buffer.from(o.data, 'utf8')
  if (o.background) {
    client.submitJobBg(o.function, options, payload, (err, jobid) => {
      if (err) fail(2, `error: ${err.message}`)
      process.stdout.write(jobid + '\n', () => process.exit(0))
    })
  } else {
    const task = client.submitJob(o.function, options, payload, (err, data) => {
      if (err) {
        if (err.name === 'JobFail' || /fail/i.test(err.message)) fail(3)
        if (err.name === 'JobException' || /exception/i.test(err.message)) fail(4, `exception: ${err.message}`)
        fail(2, `error: ${err.message}`)
      }
      process.stdout.write(Buffer.isBuffer(data) ? data : String(data), () => process.exit(0))
    })
    task.on('status', (fraction) => process.stderr.write(`status: ${fraction === 0.5 ? '1/2' : fraction}\n`))
    task.on('warn', (text) => process.stderr.write(`warning: ${text}\n`))
  }
} else {
  const count = o.count === null ? null : parseInt(o.count, 10)
  let done = 0
  const counted = () => {
    done += 1
    if (count !== null && done >= count) {
      // Let the answer reach the socket before leaving.
      setImmediate(() => { client.disconnect(); process.exit(0) })
    }
  }
  client.registerWorker(o.function, (task) => {
    const data = Buffer.from(task.payload).toString('latin1')
    if (data === 'fail') {
      task.error('fail')
      counted()
      return
    }
    if (data === 'status') {
      task.status(0.5)
      process.stderr.write('unsupported: WORK_DATA (abraxas workers stream only with the abraxas server)\n')
      task.error('unsupported')
      counted()
      return
    }
    counted()
    return Buffer.from(data.split('').reverse().join(''), 'latin1')
  })
}
