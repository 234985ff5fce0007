<?php
// Driver for PHP's gearman extension (pecl gearman on libgearman; Debian php-gearman).
// The command-line contract is in conformance/drivers/README.md.
// The extension asks for the "exceptions" option on connect (see /work/shared/peers.md),
// so WORK_EXCEPTION reaches it as GEARMAN_WORK_EXCEPTION.

$role = $argv[1] ?? '';
$o = ['priority' => 'normal', 'data' => '', 'timeout' => 10.0, 'unique' => null, 'background' => false,
      'count' => null, 'exceptions' => false, 'host' => null, 'port' => null, 'function' => null];
$flags = ['background', 'exceptions'];  // the extension asks for exceptions anyway (its default)
for ($i = 2; $i < count($argv); $i++) {
    $name = $argv[$i];
    if (strncmp($name, '--', 2) !== 0) {
        fwrite(STDERR, "php_driver: unexpected argument $name\n");
        exit(1);
    }
    $name = substr($name, 2);
    if (in_array($name, $flags, true)) {
        $o[$name] = true;
        continue;
    }
    if (!array_key_exists($name, $o) || $i + 1 >= count($argv)) {
        fwrite(STDERR, "php_driver: bad option --$name\n");
        exit(1);
    }
    $o[$name] = $argv[++$i];
}
if (!in_array($role, ['client', 'worker'], true) || $o['host'] === null || $o['port'] === null
    || $o['function'] === null || !in_array($o['priority'], ['high', 'normal', 'low'], true)) {
    fwrite(STDERR, "usage: php_driver.php client|worker --host H --port P --function F [options]\n");
    exit(1);
}
$host = $o['host'];
$port = (int)$o['port'];
$timeoutMs = (int)((float)$o['timeout'] * 1000);

function connection_problem(int $code): bool {
    return in_array($code, [GEARMAN_COULD_NOT_CONNECT, GEARMAN_LOST_CONNECTION, GEARMAN_ERRNO,
                            GEARMAN_NO_ACTIVE_FDS, GEARMAN_SERVER_ERROR], true);
}

if ($role === 'client') {
    $client = new GearmanClient();
    $client->setTimeout($timeoutMs);
    try {
        // addServer connects at once to send OPTION_REQ "exceptions"; a dead server throws.
        if (!@$client->addServer($host, $port)) {
            fwrite(STDERR, "connection error: " . $client->error() . "\n");
            exit(2);
        }
    } catch (GearmanException $e) {
        fwrite(STDERR, "connection error: cannot use $host:$port: " . $e->getMessage() . "\n");
        exit(2);
    }
    $client->setStatusCallback(function ($task) {
        fwrite(STDERR, "status: " . $task->taskNumerator() . "/" . $task->taskDenominator() . "\n");
    });
    $unique = $o['unique'];
    $data = $o['data'];
    $fn = $o['function'];
    if ($o['background']) {
        $method = ['high' => 'doHighBackground', 'normal' => 'doBackground', 'low' => 'doLowBackground'][$o['priority']];
        $handle = @$client->$method($fn, $data, $unique);
        if ($client->returnCode() !== GEARMAN_SUCCESS) {
            fwrite(STDERR, "connection error: " . $client->error() . "\n");
            exit(connection_problem($client->returnCode()) ? 2 : ($client->returnCode() === GEARMAN_TIMEOUT ? 6 : 2));
        }
        echo $handle, "\n";
        exit(0);
    }
    // The task API, not doNormal: libgearman's gearman_client_do folds WORK_DATA into the
    // result, and the contract wants them apart.
    $method = ['high' => 'addTaskHigh', 'normal' => 'addTask', 'low' => 'addTaskLow'][$o['priority']];
    $state = ['outcome' => null, 'result' => '', 'exception' => ''];
    $client->setDataCallback(function ($task) {
        fwrite(STDERR, "data: " . $task->data() . "\n");
    });
    $client->setWarningCallback(function ($task) {
        fwrite(STDERR, "warning: " . $task->data() . "\n");
    });
    $client->setCompleteCallback(function ($task) use (&$state) {
        $state['outcome'] = 'complete';
        $state['result'] = $task->data();
    });
    $client->setFailCallback(function ($task) use (&$state) {
        $state['outcome'] = 'fail';
    });
    $client->setExceptionCallback(function ($task) use (&$state) {
        $state['outcome'] = 'exception';
        $state['exception'] = $task->data();
    });
    @$client->$method($fn, $data, null, $unique);
    $ok = @$client->runTasks();
    $code = $client->returnCode();
    if ($state['outcome'] === 'complete') {
        echo $state['result'];
        exit(0);
    }
    if ($state['outcome'] === 'fail') {
        exit(3);
    }
    if ($state['outcome'] === 'exception') {
        fwrite(STDERR, "exception: " . $state['exception'] . "\n");
        exit(4);
    }
    if ($code === GEARMAN_TIMEOUT) {
        fwrite(STDERR, "timed out: " . $client->error() . "\n");
        exit(6);
    }
    fwrite(STDERR, "connection error: " . $client->error() . " (code $code)\n");
    exit(2);
}

// worker
$worker = new GearmanWorker();
$worker->setTimeout($timeoutMs);
try {
    if (!@$worker->addServer($host, $port)) {
        fwrite(STDERR, "connection error: " . $worker->error() . "\n");
        exit(2);
    }
} catch (GearmanException $e) {
    fwrite(STDERR, "connection error: cannot use $host:$port: " . $e->getMessage() . "\n");
    exit(2);
}
$worker->addFunction($o['function'], function (GearmanJob $job) {
    $data = $job->workload();
    if ($data === 'fail') {
        $job->sendFail();
        return null;
    }
    if ($data === 'status') {
        $job->sendStatus(1, 2);
        $job->sendData('partial');
        return 'done';
    }
    return strrev($data);
});
$done = 0;
$count = $o['count'] === null ? null : (int)$o['count'];
$deadline = microtime(true) + (float)$o['timeout'];
while ($count === null || $done < $count) {
    $left = (int)(($deadline - microtime(true)) * 1000);
    if ($left <= 0) {
        fwrite(STDERR, "timed out ($done jobs done)\n");
        exit(6);
    }
    $worker->setTimeout($left);   // --timeout bounds the worker's whole life
    if (@$worker->work()) {
        $done++;
        continue;
    }
    $code = $worker->returnCode();
    if ($code === GEARMAN_TIMEOUT) {
        fwrite(STDERR, "timed out ($done jobs done)\n");
        exit(6);
    }
    if ($code === GEARMAN_WORK_FAIL) {   // the job we failed on purpose
        $done++;
        continue;
    }
    fwrite(STDERR, "connection error: " . $worker->error() . " (code $code)\n");
    exit(2);
}
exit(0);
