#!/usr/bin/perl

# Tests for the mtls module: a binary upgrade (USR2, WINCH, QUIT of the old
# master) and a restart never open a window in which a revoked certificate
# passes; while the old and the new master both run, a revocation written to
# the files is enforced by the workers of both.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use Time::HiRes qw/time sleep/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(14);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

# daemonized: nginx refuses a binary upgrade while its master's parent
# is a process other than init, such as this test
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 100ms;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        add_header X-Decision $mtls_decision always;
        add_header X-Reason $mtls_reason always;
        add_header X-Pid $pid always;

        mtls_crl ca.crl;
        mtls_deny_list deny.txt;

        location / {
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA', serial => '0x10');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');
$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x1003');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol',
	serial => '0x1004');
$pki->leaf('dave', ca => 'ca', subj => '/O=Example/CN=dave',
	serial => '0x1005');

$t->write_file('ok', "ok\n");
$t->write_file('deny.txt', "1003\n");
$pki->crl('ca.crl', ca => 'ca', revoke => [ 'carol' ], number => 1);

$t->run();

###############################################################################

my $port = port(8443);

is(get('alice'), '200 allow', 'alice allowed');
is(get('bob'), '403 deny revoked', 'bob in the deny list');
is(get('carol'), '403 deny revoked', 'carol in the CRL');

# binary upgrade: a client asks all along; bob and carol must never pass

my $old = Mtls::master_pid($t);
my ($pid, $bad) = (fork(), 0);
die "fork: $!\n" unless defined $pid;

if ($pid == 0) {
	my ($n, $passed) = (0, 0);
	# until told, or until the test is gone without telling
	my $deadline = time() + 60;
	while (!-e "$d/stop-asking" && -d $d && time() < $deadline) {
		for my $who (qw/bob carol/) {
			$n++;
			$passed++ if get($who) !~ /^403 deny revoked/;
		}
	}
	Mtls::spew("$d/asked", "$n $passed") if -d $d;
	POSIX::_exit(0);
}

kill USR2 => $old;
my $new = Mtls::wait_for(sub {
	my $p = Mtls::master_pid($t);
	-e "$d/nginx.pid.oldbin" && $p && $p != $old && $p;
}, 10);
ok($new, 'new master started');

# both generations serve: each enforces a revocation made now

my %pids;
for (1 .. 20) {
	my $r = https_get($port, '/', "$d/alice");
	$pids{Mtls::header($r, 'X-Pid') // ''} = 1;
}
note('workers answering: ' . join(' ', sort keys %pids));

Mtls::write_atomic("$d/deny.txt", "1003\n1005\n");
my $dave = Mtls::wait_for(sub {
	# every connection, whichever master's worker takes it
	for (1 .. 10) {
		return 0 unless get('dave') eq '403 deny revoked';
	}
	return 1;
}, 10);
ok($dave, 'revoked while both masters run: denied by every worker');

kill WINCH => $old;
sleep(0.5);
kill QUIT => $old;
ok(Mtls::wait_for(sub { !kill(0, $old) }, 10), 'old master gone');

Mtls::spew("$d/stop-asking", '');
waitpid($pid, 0);
my ($asked, $passed) = split ' ', Mtls::slurp("$d/asked");
note("$asked requests during the upgrade");
cmp_ok($asked, '>', 0, 'requests made during the upgrade');
is($passed, 0, 'no revoked certificate passed during the upgrade');

is(get('dave'), '403 deny revoked', 'after the upgrade: deny list');
is(get('carol'), '403 deny revoked', 'after the upgrade: CRL');
is(get('alice'), '200 allow', 'after the upgrade: alice');

# restart: revoked from the first request; stop() does not wait for a
# daemonized master, and run() must not take its pid file for the new one's

my $last = Mtls::master_pid($t);
$t->stop();
ok(Mtls::wait_for(sub { !-e "$d/nginx.pid" && !kill(0, $last) }, 10),
	'stopped master gone');
$t->run();

is(get('bob'), '403 deny revoked', 'after a restart: bob');
is(get('dave'), '403 deny revoked', 'after a restart: dave');

###############################################################################

sub get {
	my ($who) = @_;
	return outcome(https_get($port, '/', "$d/$who"));
}

###############################################################################
