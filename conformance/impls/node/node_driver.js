#!/usr/bin/env node
// Driver for the node `gearman` package (npm gearman@2, github mreinstein/node-gearman).
// The command-line contract is in conformance/drivers/README.md. The package is found
// through NODE_PATH (the registry points it at .peers/node/node_modules).
//
// The library is a thin packet layer with one connection: the driver runs the worker loop
// itself (GRAB_JOB until NO_JOB, then PRE_SLEEP, wake on NOOP). With --exceptions it asks
// for the "exceptions" option before submitting (index.js setOption), waiting at most 2 s
// for OPTION_RES (python gear's geard never answers it).
'use strict'

let gearman
try {
  gearman = require('gearman')
} catch (err) {
  process.stderr.write('node_driver: cannot load the gearman package (npm install gearman@2; set NODE_PATH)\n')
  process.exit(1)
}

const args = process.argv.slice(2)
const role = args.shift()
const o = { priority: 'normal', data: '', timeout: '10', unique: null, background: false, exceptions: false, count: null }
for (let i = 0; i < args.length; i++) {
  const name = args[i]
  if (!name.startsWith('--')) { fail(1, `node_driver: unexpected argument ${name}`) }
  const key = name.slice(2)
  if (key === 'background' || key === 'exceptions') { o[key] = true; continue }
  if (i + 1 >= args.length) { fail(1, `node_driver: ${name} needs a value`) }
  o[key] = args[++i]
}
if (!['client', 'worker'].includes(role) || !o.host || !o.port || !o.function ||
    !['high', 'normal', 'low'].includes(o.priority)) {
  fail(1, 'usage: node_driver.js client|worker --host H --port P --function F [options]')
}

function fail (code, message) {
  if (message) process.stderr.write(message + '\n')
  process.exit(code)
}

const timeoutMs = Math.round(parseFloat(o.timeout) * 1000)
setTimeout(() => fail(6, `timed out after ${o.timeout}s`), timeoutMs).unref()

const conn = gearman(o.host, parseInt(o.port, 10))
conn.on('error', (err) => fail(2, `connection error: ${err.message}`))
conn.on('close', () => fail(2, 'connection error: the server closed the connection'))
conn.on('ERROR', (code, text) => fail(2, `server error: ${code} ${text}`))

if (role === 'client') {
  conn.on('JOB_CREATED', (handle) => {
    if (o.background) {
      process.stdout.write(handle + '\n', () => process.exit(0))
    }
  })
  conn.on('WORK_DATA', (job) => process.stderr.write(`data: ${job.payload.toString()}\n`))
  conn.on('WORK_WARNING', (job) => process.stderr.write(`warning: ${job.warning.toString()}\n`))
  conn.on('WORK_STATUS', (job) => process.stderr.write(`status: ${job.percent_num}/${job.percent_den}\n`))
  conn.on('WORK_COMPLETE', (job) => process.stdout.write(job.payload, () => process.exit(0)))
  conn.on('WORK_FAIL', () => process.exit(3))
  conn.on('WORK_EXCEPTION', (job) => fail(4, `exception: ${job.exception.toString()}`))
  let submitted = false
  const submit = () => {
    if (submitted) return
    submitted = true
    const options = { background: o.background, priority: o.priority }
    // Without a unique id the library makes up a random one (index.js submitJob).
    if (o.unique !== null) options.unique_id = o.unique
    conn.submitJob(o.function, Buffer.from(o.data, 'utf8'), options)
  }
  conn.on('OPTION_RES', submit)
  conn.connect(() => {
    if (!o.exceptions) return submit()
    conn.setOption('exceptions')
    setTimeout(() => {
      if (submitted) return
      process.stderr.write('the server did not answer OPTION_REQ exceptions within 2 s: going on without it\n')
      submit()
    }, 2000).unref()
  })
} else {
  const count = o.count === null ? null : parseInt(o.count, 10)
  let done = 0
  let busy = false
  const finish = () => {
    done += 1
    busy = false
    if (count !== null && done >= count) {
      conn.close()
      setImmediate(() => process.exit(0))
      return
    }
    conn.grabJob()
  }
  conn.on('JOB_ASSIGN', (job) => {
    busy = true
    const data = job.payload.toString('latin1')
    if (data === 'fail') {
      conn.sendWorkFail(job.handle)
    } else if (data === 'status') {
      conn.sendWorkStatus(job.handle, '1', '2')
      conn.sendWorkData(job.handle, 'partial')
      conn.sendWorkComplete(job.handle, 'done')
    } else {
      conn.sendWorkComplete(job.handle, Buffer.from(data.split('').reverse().join(''), 'latin1'))
    }
    finish()
  })
  conn.on('NO_JOB', () => conn.preSleep())
  conn.on('NOOP', () => { if (!busy) conn.grabJob() })
  conn.connect(() => {
    conn.addFunction(o.function)
    conn.grabJob()
  })
}
