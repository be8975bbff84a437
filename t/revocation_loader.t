#!/usr/bin/perl

# Tests for the mtls module: the revocation loader is a process of its own,
# so that every nginx process stays single-threaded.  One loader whatever
# the number of workers, forked without being a child of worker 0; it
# survives the signals sent to nginx's process group, is started again if
# it is killed, and is gone with the tables once nginx stops, also with
# "master_process off" and "nginx -s stop".

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use Time::HiRes qw/sleep/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(29);

my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;
__MODE__

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        mtls_deny_list deny.txt;

        location / {
            try_files /ok =404;
        }
    }
}

EOF

$t->write_file_expand('nginx.conf', $conf =~ s/__MODE__/worker_processes 2;/r);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');
$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x1003');

$t->write_file('ok', "ok\n");
$t->write_file('deny.txt', "# nothing revoked\n");

$t->run();

###############################################################################

my $master = Mtls::master_pid($t);
my @workers = Mtls::workers($t);

is(scalar @workers, 2, 'two workers');
is(join(' ', map { threads($_) } @workers), '1 1',
	'every worker has one thread');

my @loaders;
Mtls::wait_for(sub { @loaders = Mtls::loaders($master) });

is(scalar @loaders, 1, 'one loader for two workers');

my ($loader, $parent) = @{$loaders[0] // [ 0, 0 ]};

like(Mtls::cmdline($loader), qr/^nginx: mtls revocation loader\b/, 'loader: title');
ok($parent && !grep({ $_ == $parent } @workers, $master),
	'loader: not a child of a worker or the master');
is(join(' ', fds($loader)), 'socket', 'loader: keeps no descriptor of nginx');

# live revocation through the loader

is(get('alice'), '200 allow', 'allowed');
revoke($t, "1002\n");
is(get('alice'), '403 deny revoked', 'revoked without a reload');

# signals for nginx's process group do not end the loader

kill $_ => $loader for qw/INT TERM QUIT HUP USR1 USR2 WINCH/;
sleep(0.5);

is(join(' ', map { $_->[0] } Mtls::loaders($master)), $loader,
	'loader: survives the signals of nginx');

# killed, it is started again

my $mark = Mtls::log_mark($t);
kill KILL => $loader;

like(Mtls::wait_log($t, $mark, qr/revocation loader process/),
	qr/\[alert\] .*mtls: revocation loader process $loader exited unexpectedly, starting a new one$/,
	'killed: alert');

my $again = Mtls::wait_for(sub {
	my @l = Mtls::loaders($master);
	@l == 1 && $l[0][0] != $loader ? $l[0][0] : 0;
});

ok($again, 'killed: a new loader');
is(scalar(Mtls::loaders($master)), 1, 'killed: one loader');

# the new loader knows what the killed one read: a file changed since the
# start is read (and logged) once, not again

sleep(0.5);
unlike(substr($t->read_file('error.log'), $mark), qr/mtls: reloaded/,
	'killed: unchanged file not read again');
is(join(' ', map { threads($_) } Mtls::workers($t)), '1 1',
	'killed: workers still have one thread');

revoke($t, "1002\n1003\n");
is(get('bob'), '403 deny revoked', 'killed: later revocation in force');

# a reload: the old loader goes with the old workers

Mtls::reload($t);

my $new = Mtls::wait_for(sub {
	my @l = Mtls::loaders($master);
	@l == 1 && $l[0][0] != $again ? $l[0][0] : 0;
});

ok($new, 'reload: one new loader');

revoke($t, "1003\n");
is(get('alice'), '200 allow', 'reload: live update after reload');

# nginx -s quit: nothing left

$t->stop();

ok(Mtls::wait_for(sub { !Mtls::loaders($master) }), 'quit: no loader left');
is(join(' ', Mtls::shm_tables($master)), '', 'quit: no tables left');

# the alert for the killed loader, checked above, is the only one expected:
# out of the log, so that Test::Nginx's check at the end sees any other

is(Mtls::take_log_lines($t, qr/\[alert\] .*mtls: revocation loader process $loader exited unexpectedly, starting a new one$/),
	1, 'killed: alert taken out of the log');

###############################################################################

# master_process off: the single process forks the loader

$t->write_file_expand('nginx.conf', $conf =~ s/__MODE__/master_process off;/r);
$t->write_file('deny.txt', "# nothing revoked\n");
$t->run();

my $single = Mtls::master_pid($t);

is(threads($single), 1, 'single: one thread');

# The loader has its title once it runs, which a busy machine may delay
# after $t->run() returns.
Mtls::wait_for(sub { @loaders = Mtls::loaders($single) });

is(scalar @loaders, 1, 'single: one loader');
ok(@loaders && $loaders[0][1] != $single,
	'single: loader not a child of the single process');

is(get('bob'), '200 allow', 'single: allowed');
revoke($t, "1003\n");
is(get('bob'), '403 deny revoked', 'single: revoked');

# nginx -s stop: nothing left

my $out = `$Test::Nginx::NGINX -p $d/ -c nginx.conf -e $d/error.log -s stop 2>&1`;

unlike($out, qr/\[(emerg|alert)\]/, 'stop: signal sent');
ok(Mtls::wait_for(sub { gone($single) }, 10), 'stop: nginx exited');
ok(Mtls::wait_for(sub { !Mtls::loaders($single) }), 'stop: no loader left');
is(join(' ', Mtls::shm_tables($single)), '', 'stop: no tables left');

# Test::Nginx stops (and reaps) the nginx of the pid file, which nginx took
# away as it exited

$t->write_file('nginx.pid', "$single\n");
$t->stop();

###############################################################################

sub get {
	my ($cert) = @_;
	return outcome(https_get(port(8443), '/', "$d/$cert"));
}

# writes the deny list atomically and waits until it is in force

sub revoke {
	my ($t, $content) = @_;

	my $mark = Mtls::log_mark($t);
	Mtls::write_atomic("$d/deny.txt", $content);
	Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/deny\.txt"/)
		or diag('no reload of deny.txt logged');
}

sub gone {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return 1;
	my $stat = <$fh> // return 1;
	return substr($stat, rindex($stat, ')') + 2, 1) =~ /[ZX]/;
}

# how many threads a process has

sub threads {
	my ($pid) = @_;
	my @tasks = glob "/proc/$pid/task/*";
	return scalar @tasks;
}

# what a process's descriptors other than 0, 1 and 2 are: "socket",
# "file", ...

sub fds {
	my ($pid) = @_;
	my @kinds;

	for my $fd (sort { $a <=> $b } map { m!/(\d+)$! } glob "/proc/$pid/fd/*") {
		next if $fd <= 2;
		my $target = readlink("/proc/$pid/fd/$fd") // next;
		push @kinds, $target =~ /^(\w+):/ ? $1 : 'file';
	}

	return @kinds;
}

###############################################################################
