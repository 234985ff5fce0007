#!/usr/bin/perl
# Driver for Perl Gearman::Client / Gearman::Worker (Debian libgearman-client-perl).
# The command-line contract is in conformance/drivers/README.md.
#
# Limitations (also recorded as data in conformance/drivers/__init__.py):
# - The client leaves the "exceptions" option off: Gearman::Task::exception thaws the
#   exception with Storable (lib/Gearman/Task.pm sub exception), which only Perl workers
#   send, so a WORK_EXCEPTION arrives as WORK_FAIL.
# - WORK_STATUS / WORK_DATA / WORK_WARNING reach do_task's on_status / on_data /
#   on_warning callbacks (lib/Gearman/Task.pm), reported on stderr like the other drivers.
use strict;
use warnings;
use Getopt::Long qw(GetOptionsFromArray);
use Gearman::Client;
use Gearman::Worker;

my $role = shift @ARGV // '';
my %o = (priority => 'normal', data => '', timeout => 10);
my @spec = ('host=s', 'port=i', 'function=s', 'unique=s', 'background', 'priority=s',
            'data=s', 'count=i', 'timeout=f', 'exceptions');
if (($role ne 'client' && $role ne 'worker') || !GetOptionsFromArray(\@ARGV, \%o, @spec)
    || !defined $o{host} || !defined $o{port} || !defined $o{function}) {
    print STDERR "usage: perl_driver.pl client|worker --host H --port P --function F [options]\n";
    exit 1;
}
if ($o{priority} !~ /^(high|normal|low)$/) {
    print STDERR "perl_driver: --priority must be high, normal or low\n";
    exit 1;
}
my $server = "$o{host}:$o{port}";
if ($role eq 'client' && $o{exceptions}) {
    print STDERR "note: Gearman::Client cannot take exceptions from non-Perl workers: WORK_EXCEPTION arrives as WORK_FAIL\n";
}

sub can_connect {
    require IO::Socket::INET;
    my $sock = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port}, Proto => 'tcp',
                                     Timeout => 5);
    return 0 unless $sock;
    close $sock;
    return 1;
}

if ($role eq 'client') {
    # Gearman::Client reports an unreachable server only as a failed task: check first so
    # that a dead server is exit 2, not exit 3.
    if (!can_connect()) {
        print STDERR "connection error: cannot connect to $server: $!\n";
        exit 2;
    }
    # command_timeout (documented in Gearman::Client, default 30 s) bounds the wait for
    # JOB_CREATED (Gearman::Taskset::add_task); the task's timeout starts only after it.
    my $client = Gearman::Client->new(job_servers => [$server], command_timeout => $o{timeout});
    my %opts = (priority => $o{priority}, timeout => $o{timeout});
    $opts{uniq} = $o{unique} if defined $o{unique};
    if ($o{background}) {
        my $handle = $client->dispatch_background($o{function}, \$o{data}, \%opts);
        if (!defined $handle) {
            print STDERR "connection error: dispatch_background failed\n";
            exit 2;
        }
        $handle =~ s{^.*//}{};    # Gearman::Client prefixes "host:port//"
        print "$handle\n";
        exit 0;
    }
    $opts{on_status} = sub { my ($n, $d) = @_; print STDERR "status: $n/$d\n" };
    $opts{on_data} = sub { my ($ref) = @_; print STDERR "data: ${$ref}\n" };
    $opts{on_warning} = sub { my ($msg) = @_; print STDERR "warning: $msg\n" };
    require Time::HiRes;
    my $started = Time::HiRes::time();
    my $result = $client->do_task($o{function}, \$o{data}, \%opts);
    if (defined $result) {
        binmode STDOUT;
        print ${$result};
        exit 0;
    }
    # do_task reports a timeout like a failure (undef): tell them apart by the clock.
    if (Time::HiRes::time() - $started >= $o{timeout}) {
        print STDERR "timed out after $o{timeout}s\n";
        exit 6;
    }
    exit 3;
}

# worker
if (!can_connect()) {
    print STDERR "connection error: cannot connect to $server: $!\n";
    exit 2;
}
my $worker = Gearman::Worker->new(job_servers => [$server]);
my $done = 0;
my $deadline = time + ($o{timeout} // 60);
# Gearman::Worker::work checks stop_if only between waits of up to 10 s: an alarm keeps
# --timeout exact.
require Time::HiRes;
$SIG{ALRM} = sub { print STDERR "timed out ($done jobs done)\n"; exit 6 };
Time::HiRes::alarm($o{timeout} // 60);
$worker->register_function($o{function} => sub {
    my $job = shift;
    my $data = $job->arg;
    if ($data eq 'fail') {
        return undef;    # Gearman::Worker sends WORK_FAIL for an undefined result
    }
    if ($data eq 'status') {
        $job->set_status(1, 2);
        $worker->send_work_data($job, 'partial');
        return 'done';
    }
    return scalar reverse $data;
});
$worker->work(
    on_complete => sub { $done++ },
    on_fail     => sub { $done++ },
    stop_if     => sub {
        return 1 if defined $o{count} && $done >= $o{count};
        return 1 if time > $deadline;
        return 0;
    },
);
if (defined $o{count} && $done < $o{count}) {
    print STDERR "timed out ($done jobs done)\n";
    exit 6;
}
exit 0;
