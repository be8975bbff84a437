#!/usr/bin/perl

# Tests for the mtls module: live revocation where nginx's own checks never
# look again.  An HTTP/2 connection and resumed TLS sessions (session cache
# and tickets, TLS 1.2 and 1.3; a rebuilt chain for a CRL) opened before the
# revocation, every one of several worker processes, and "nginx -s reload"
# without a window in which a revoked certificate passes.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use POSIX ();
use Time::HiRes qw/time sleep/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

eval { require Protocol::HTTP2::Client; };
plan(skip_all => 'Protocol::HTTP2 not installed') if $@;

my $t = Test::Nginx->new()->has(qw/http http_ssl http_v2 socket_ssl_reused/)
	->has_daemon('openssl')->plan(44);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;
worker_processes 4;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Conn $connection always;
    add_header X-Pid $pid always;
    add_header X-Reused $ssl_session_reused always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;

        location /h2 {
            mtls_deny_list h2.txt;
            try_files /ok =404;
        }
    }

    # resumption from the session cache

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;

        location /resume {
            mtls_deny_list resume.txt;
            try_files /ok =404;
        }
    }

    # resumption with session tickets

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;

        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_session_cache off;
        ssl_session_tickets on;

        location /resume {
            mtls_deny_list resume.txt;
            try_files /ok =404;
        }
    }

    # resumption and CRLs: the chain of a resumed session

    server {
        listen       127.0.0.1:%%PORT_8446%% ssl;
        server_name  localhost;

        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_session_cache shared:SSL2:1m;
        ssl_session_tickets on;

        mtls_crl ca.crl;
        mtls_crl int.crl;

        location / {
            try_files /ok =404;
        }
    }

    # spread over the workers

    server {
        listen       127.0.0.1:%%PORT_8447%% ssl reuseport;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;

        location /workers {
            mtls_deny_list workers.txt;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8448%% ssl;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;

        location /reload {
            mtls_deny_list reload.txt;
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA', serial => '0x10');
$pki->ca('int', ca => 'ca', subj => '/O=Example/CN=Int CA', serial => '0x11');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');

$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x1003');
$pki->leaf('deep', ca => 'int', subj => '/O=Example/CN=deep',
	serial => '0x3002');

$t->write_file('cas.crt', $t->read_file('ca.crt') . $t->read_file('int.crt'));
$t->write_file('ok', "ok\n");

$t->write_file("$_.txt", "# nothing revoked\n")
	for qw/h2 resume workers reload/;

$pki->crl('ca.crl', ca => 'ca', number => 1);
$pki->crl('int.crl', ca => 'int', number => 1);

$t->run();

###############################################################################

# HTTP/2: streams of one connection, before and after

my $h2 = Mtls::H2->new(port => port(8443), cert => "$d/alice");
my @r;

push @r, $h2 && $h2->get('/h2');
is(outcome($r[-1]), '200 allow', 'h2: allowed');

revoke($t, 'h2.txt', "1002\n");

push @r, $h2 && $h2->get('/h2');
is(outcome($r[-1]), '403 deny revoked', 'h2: next stream revoked');

push @r, $h2 ? $h2->get_many('/h2', '/h2', '/h2') : ();
is(join(', ', map { outcome($_) } @r[2 .. 4]),
	join(', ', ('403 deny revoked') x 3), 'h2: concurrent streams revoked');

my %conn = map { header($_, 'X-Conn') // 'none' => 1 } @r;

is(join(' ', sort keys %conn), header($r[0], 'X-Conn'), 'h2: one connection');

$h2->close() if $h2;

$h2 = Mtls::H2->new(port => port(8443), cert => "$d/bob");

is(outcome($h2 && $h2->get('/h2')), '200 allow', 'h2: other certificate');

###############################################################################

# resumed TLS sessions: nginx does not look at the certificate again

my @variants = (
	[ 8444, 'TLSv1_2', 'cache, TLS 1.2' ],
	[ 8444, 'TLSv1_3', 'cache, TLS 1.3' ],
	[ 8445, 'TLSv1_2', 'tickets, TLS 1.2' ],
	[ 8445, 'TLSv1_3', 'tickets, TLS 1.3' ],
);

my @ctx = map { Mtls::client_ctx("$d/alice", $_->[1]) } @variants;

for my $i (0 .. $#variants) {
	my ($port, undef, $name) = @{$variants[$i]};

	my $full = Mtls::resumed_get(port($port), $ctx[$i], '/resume');
	my $again = Mtls::resumed_get(port($port), $ctx[$i], '/resume');

	is(outcome($full) . ' ' . (header($full, 'X-Reused') // ''),
		'200 allow .', "$name: full handshake");
	is(outcome($again) . ' ' . (header($again, 'X-Reused') // ''),
		'200 allow r', "$name: resumed, allowed");
}

revoke($t, 'resume.txt', "10:02\n");

for my $i (0 .. $#variants) {
	my ($port, undef, $name) = @{$variants[$i]};

	my $r = Mtls::resumed_get(port($port), $ctx[$i], '/resume');

	is(outcome($r) . ' ' . (header($r, 'X-Reused') // ''),
		'403 deny revoked r', "$name: resumed, revoked");
}

# a resumed session of a certificate below an intermediate, which the
# root's CRL then revokes: the chain is not in the session

my $ctx_deep = Mtls::client_ctx("$d/deep", 'TLSv1_3');
my $ctx_alice = Mtls::client_ctx("$d/alice", 'TLSv1_3');

Mtls::resumed_get(port(8446), $ctx_deep, '/');
Mtls::resumed_get(port(8446), $ctx_alice, '/');

my $r = Mtls::resumed_get(port(8446), $ctx_deep, '/');

is(outcome($r) . ' ' . (header($r, 'X-Reused') // ''), '200 allow r',
	'chain: resumed, allowed');

my $mark = Mtls::log_mark($t);
$pki->crl('ca.crl.next', ca => 'ca', revoke => [ 'int' ],
	number => 2);
Mtls::write_atomic("$d/ca.crl", $t->read_file('ca.crl.next'));

like(Mtls::wait_log($t, $mark, qr/mtls: .*ca\.crl/),
	qr/mtls: reloaded "\Q$d\E\/ca\.crl", 1 entries in \d+ ms$/, 'chain: CRL reloaded');

$r = Mtls::resumed_get(port(8446), $ctx_deep, '/');

is(outcome($r) . ' ' . (header($r, 'X-Reused') // ''),
	'403 deny revoked r', 'chain: resumed, intermediate revoked');

$r = Mtls::resumed_get(port(8446), $ctx_alice, '/');

is(outcome($r) . ' ' . (header($r, 'X-Reused') // ''), '200 allow r',
	'chain: resumed, other branch allowed');

$r = Mtls::resumed_get(port(8446), Mtls::client_ctx("$d/deep"), '/');

is(outcome($r), '403 deny revoked', 'chain: full handshake, revoked');

###############################################################################

# every worker: keep-alive connections open on all of them before the
# revocation, new connections after

my @ka = map { Mtls::KeepAlive->new(port => port(8447), cert => "$d/alice") }
	1 .. 48;

my @before = map { $_ ? $_->get('/workers') : undef } @ka;
my %pids = map { (header($_, 'X-Pid') // 'none') => 1 } @before;

is(scalar(grep { outcome($_) eq '200 allow' } @before), 48,
	'workers: allowed on 48 connections');
is(scalar(keys %pids), 4, 'workers: connections on 4 workers');

my $start = time();
Mtls::write_atomic("$d/workers.txt", "1002\n");

# the first denial on a new connection, whichever worker takes it

my $first = Mtls::wait_for(sub {
	get('/workers', 'alice', 8447) eq '403 deny revoked'
}, 5);
my $elapsed = time() - $start;

ok($first, 'workers: revoked');
cmp_ok($elapsed, '<', 2, 'workers: revoked within the interval')
	or diag(sprintf('after %.2f s', $elapsed));

# give the others the same interval before the next request

sleep(0.5);

my @after = map { $_ ? $_->get('/workers') : undef } @ka;
%pids = map { (header($_, 'X-Pid') // 'none') => 1 } @after;

is(join(', ', grep { $_ ne '403 deny revoked' } map { outcome($_) } @after),
	'', 'workers: revoked on every open connection');
is(scalar(keys %pids), 4, 'workers: open connections on 4 workers');

my @new = map { https_get(port(8447), '/workers', "$d/alice") } 1 .. 48;
%pids = map { (header($_, 'X-Pid') // 'none') => 1 } @new;

is(join(', ', grep { $_ ne '403 deny revoked' } map { outcome($_) } @new),
	'', 'workers: revoked on every new connection');
is(scalar(keys %pids), 4, 'workers: new connections on 4 workers');

$_->close() for grep { $_ } @ka;

is(get('/workers', 'bob', 8447), '200 allow', 'workers: other certificate');

###############################################################################

# nginx -s reload: requests go on during the reload, none passes

is(get('/reload', 'alice', 8448), '200 allow', 'reload: allowed');

revoke($t, 'reload.txt', "1002\n");

is(get('/reload', 'alice', 8448), '403 deny revoked', 'reload: revoked');

my @old_workers = Mtls::workers($t);
my $results = "$d/hammer.txt";
my $stop = "$d/hammer.stop";

my $pid = fork() // die "fork: $!\n";

if ($pid == 0) {
	# stopped by $stop; the deadline only in case the test died
	my $deadline = time() + 60;
	open my $fh, '>', $results or POSIX::_exit(1);
	$fh->autoflush(1);

	while (!-e $stop && time() < $deadline) {
		my $r = https_get(port(8448), '/reload', "$d/alice");
		printf $fh "%.3f %s %s\n", time(), header($r, 'X-Pid') // 'none',
			outcome($r);
	}

	close $fh;
	POSIX::_exit(0);
}

# (the waits are long for a loaded machine: they end as soon as they can)

Mtls::wait_for(sub { -s $results && lines($results) >= 10 }, 20);

my $reload_start = time();
Mtls::reload($t);
my $reload_end = time();

# requests right after the reload, on the new workers

my $n = lines($results);
Mtls::wait_for(sub { lines($results) >= $n + 20 }, 20);

open my $sfh, '>', $stop or die "can't create $stop: $!\n";
close $sfh;
waitpid($pid, 0);

my @hammer = map { [ split / /, $_, 3 ] } split /\n/, $t->read_file('hammer.txt');
my %old = map { $_ => 1 } @old_workers;

my @wrong = grep { $_->[2] ne '403 deny revoked' } @hammer;
my @on_new = grep { $_->[1] ne 'none' && !$old{$_->[1]} } @hammer;

cmp_ok(scalar(@hammer), '>=', 30, 'reload: requests made during the reload')
	or diag(scalar(@hammer) . ' requests');
is(join('; ', map { "$_->[0] $_->[1] $_->[2]" } @wrong), '',
	'reload: every request revoked');
ok(scalar(@on_new), 'reload: requests served by new workers');
ok(scalar(grep { $_->[0] < $reload_start } @hammer),
	'reload: requests before the reload');

isnt(join(' ', sort(Mtls::workers($t))), join(' ', sort @old_workers),
	'reload: new workers');

# the new workers' loader takes live updates

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/reload.txt", "# nothing revoked\n");

like(Mtls::wait_log($t, $mark, qr/mtls: .*reload\.txt/),
	qr/mtls: reloaded "\Q$d\E\/reload\.txt", 0 entries in \d+ ms$/,
	'reload: live update after reload logged');
is(get('/reload', 'alice', 8448), '200 allow',
	'reload: live update after reload');

revoke($t, 'reload.txt', "1002\n");

is(get('/reload', 'alice', 8448), '403 deny revoked',
	'reload: revoked again after reload');

# reload with the revocation written just before: the new configuration
# reads the file itself

Mtls::write_atomic("$d/reload.txt", "1003\n");
Mtls::reload($t);

is(get('/reload', 'bob', 8448), '403 deny revoked',
	'reload: written just before the reload');
is(get('/reload', 'alice', 8448), '200 allow',
	'reload: written just before the reload, other certificate');

###############################################################################

$t->stop();

my $log = $t->read_file('error.log');

like($log, qr/access forbidden by mtls: revoked, .*serial: 1002, by "\Q$d\E\/resume\.txt", .*request: "GET \/resume /,
	'log: resumed session');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

# writes a deny list atomically and waits until it is in force

sub revoke {
	my ($t, $name, $content) = @_;

	my $mark = Mtls::log_mark($t);
	Mtls::write_atomic("$d/$name", $content);
	Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/\Q$name\E"/)
		or diag("no reload of $name logged");
}

sub lines {
	my ($file) = @_;
	open my $fh, '<', $file or return 0;
	my @l = <$fh>;
	return scalar @l;
}

###############################################################################
