#!/usr/bin/perl

# Tests for the mtls module over HTTP/3: live revocation on QUIC connections
# opened before it (deny list and CRL), resumed QUIC sessions (session
# tickets; a chain rebuilt for a CRL), and 0-RTT early data. Where nginx
# was built without HTTP/3, checks that it refuses "quic" and
# "ssl_early_data" goes on working over TCP only.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl');

unless ($t->has_module('http_v3')) {
	$t->plan(1);

	diag('nginx was built without --with-http_v3_module: '
		. 'checking that it refuses "listen ... quic"');

	like(Mtls::nginx_t($t, <<'EOF'), qr/\[emerg\] invalid parameter "quic" in /,
events {
}

http {
    server {
        listen 127.0.0.1:%%PORT_8943_UDP%% quic;
        ssl_early_data on;
    }
}
EOF
		'no HTTP/3: quic listener refused');

	$t->write_file('error.log', '');
	exit;
}

# nginx has HTTP/3: a missing client is a failure, not a reason to skip

if (my $missing = Mtls::H3::missing()) {
	$t->plan(1);
	fail("nginx has HTTP/3, the test client needs $missing");
	$t->write_file('error.log', '');
	exit;
}

# nginx accepts 0-RTT over QUIC from 1.29.1 on, built with OpenSSL 3.5.1 or
# later (before, or with older OpenSSL, its compatibility layer turns early
# data off, whatever ssl_early_data says)

my $zero_rtt = $t->has_version('1.29.1') && $t->has_feature('openssl:3.5.1');

$t->plan(36);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;
    ssl_client_certificate cas.crt;
    ssl_verify_client optional_no_ca;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Proto $server_protocol always;
    add_header X-Port $remote_port always;
    add_header X-Reused $ssl_session_reused always;
    add_header X-Early $ssl_early_data always;
    add_header X-Subject $mtls_subject always;

    mtls_crl ca.crl;
    mtls_crl int.crl;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        listen       127.0.0.1:%%PORT_8943_UDP%% quic;
        server_name  localhost;

        location / {
            mtls_deny_list deny.txt;
            try_files /ok =404;
        }
    }

    # resumption from the session cache

    server {
        listen       127.0.0.1:%%PORT_8945_UDP%% quic;
        server_name  localhost;

        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;

        location / {
            mtls_deny_list cache.txt;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8944_UDP%% quic;
        server_name  localhost;

        ssl_early_data on;

        location / {
            mtls_deny_list early.txt;
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
$pki->leaf('bob', ca => 'int', subj => '/O=Example/CN=bob',
	serial => '0x3003');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol',
	serial => '0x1004');
$pki->leaf('erin', ca => 'int', subj => '/O=Example/CN=erin',
	serial => '0x3005');
$pki->leaf('dave', ca => 'ca', subj => '/O=Example/CN=dave',
	serial => '0x1007');
$pki->leaf('frank', ca => 'ca', subj => '/O=Example/CN=frank',
	serial => '0x1006');

$t->write_file('cas.crt', $t->read_file('ca.crt') . $t->read_file('int.crt'));
$t->write_file('ok', "ok\n");
$t->write_file("$_.txt", "# nothing revoked\n") for qw/deny early cache/;

$pki->crl('ca.crl', ca => 'ca', number => 1);
$pki->crl('int.crl', ca => 'int', number => 1);

$t->run();

###############################################################################

# a deny list, on a connection opened before: its next request is denied,
# another client's connection goes on

my $alice = Mtls::H3->new(port => port(8943, udp => 1), cert => "$d/alice");
my $carol = Mtls::H3->new(port => port(8943, udp => 1), cert => "$d/carol",
	ticket => "$d/carol.ticket");

my @r = map { $_ && $_->get('/') } $alice, $carol;
is(outcome($r[0]), '200 allow', 'deny list: alice allowed');
is(outcome($r[1]), '200 allow', 'deny list: carol allowed');
is(header($r[0], 'X-Proto'), 'HTTP/3.0', 'deny list: over HTTP/3');

revoke($t, 'deny.txt', "1002\n");

push @r, $alice && $alice->get('/');
is(outcome($r[-1]), '403 deny revoked', 'deny list: alice revoked');
is(outcome($carol && $carol->get('/')), '200 allow',
	'deny list: carol goes on');

my $info = $alice && $alice->info();
is($info && "$info->{requests} $info->{handshake}", '2 1',
	'deny list: one connection');
is(header($r[-1], 'X-Port'), header($r[0], 'X-Port'),
	'deny list: from one client port');

# a CRL, on a connection opened before

my $bob = Mtls::H3->new(port => port(8943, udp => 1), cert => "$d/bob");

is(outcome($bob && $bob->get('/')), '200 allow', 'crl: bob allowed');

revoke_crl($t, 'int.crl', ca => 'int', revoke => [ 'bob' ], number => 2);

is(outcome($bob && $bob->get('/')), '403 deny revoked', 'crl: bob revoked');
$info = $bob && $bob->info();
is($info && "$info->{requests} $info->{handshake}", '2 1',
	'crl: one connection');

$_ && $_->close() for $alice, $bob;

# resumption with a session ticket: the certificate of the first handshake,
# checked again on every request

ok($carol && $carol->ticket(), 'resumption: ticket');
$carol->close() if $carol;

my $r = resumed('carol', 8943);
is(outcome($r), '200 allow', 'resumption: allowed');
is(header($r, 'X-Reused'), 'r', 'resumption: resumed');
is(header($r, 'X-Subject'), 'CN=carol,O=Example', 'resumption: subject');

revoke($t, 'deny.txt', "1002\n1004\n");

$r = resumed('carol', 8943);
is(outcome($r), '403 deny revoked', 'resumption: revoked');
is(header($r, 'X-Reused'), 'r', 'resumption: revoked when resumed');

# the same from the session cache (ssl_session_tickets off)

my $dave = Mtls::H3->new(port => port(8945, udp => 1), cert => "$d/dave",
	ticket => "$d/dave.ticket");
$r = $dave && $dave->get('/');
is(outcome($r) . ' ' . header($r, 'X-Reused'), '200 allow .',
	'session cache: dave allowed');
ok($dave && $dave->ticket(), 'session cache: ticket');
$dave->close() if $dave;

$r = resumed('dave', 8945);
is(outcome($r) . ' ' . header($r, 'X-Reused'), '200 allow r',
	'session cache: resumed');

revoke($t, 'cache.txt', "1007\n");

$r = resumed('dave', 8945);
is(outcome($r) . ' ' . header($r, 'X-Reused'), '403 deny revoked r',
	'session cache: revoked');

# a resumed session keeps no verified chain: revoking the intermediate
# denies its leaf

my $erin = Mtls::H3->new(port => port(8943, udp => 1), cert => "$d/erin",
	ticket => "$d/erin.ticket");
is(outcome($erin && $erin->get('/')), '200 allow', 'chain: erin allowed');
ok($erin && $erin->ticket(), 'chain: ticket');
$erin->close() if $erin;

revoke_crl($t, 'ca.crl', ca => 'ca', revoke => [ 'int' ], number => 2);

$r = resumed('erin', 8943);
is(outcome($r), '403 deny revoked', 'chain: intermediate revoked');
is(header($r, 'X-Reused'), 'r', 'chain: resumed');

# 0-RTT: the request in early data is decided on the certificate of the
# session it resumes, with revocation in force

my $frank = Mtls::H3->new(port => port(8944, udp => 1), cert => "$d/frank",
	ticket => "$d/frank.ticket");
is(outcome($frank && $frank->get('/')), '200 allow', '0-RTT: frank allowed');
ok($frank && $frank->ticket(), '0-RTT: ticket');
$frank->close() if $frank;

my $early = $zero_rtt ? '1' : '';
my $accepted = $zero_rtt ? 1 : 0;

diag('nginx ' . ($zero_rtt ? 'accepts' : 'refuses') . ' 0-RTT over QUIC');

($r, $info) = resumed('frank', 8944, early => 1);
is(outcome($r), '200 allow', '0-RTT: allowed');
is($info && "$info->{resumed} $info->{early_data_accepted}", "1 $accepted",
	'0-RTT: client: resumed, early data ' . ($zero_rtt ? '' : 'not ')
	. 'accepted');
is(header($r, 'X-Early'), $early, '0-RTT: $ssl_early_data');
is(header($r, 'X-Subject'), 'CN=frank,O=Example', '0-RTT: subject');

revoke($t, 'early.txt', "1006\n");

($r, $info) = resumed('frank', 8944, early => 1);
is(outcome($r), '403 deny revoked', '0-RTT: revoked');
is($info && $info->{early_data_accepted}, $accepted,
	'0-RTT: revoked, early data ' . ($zero_rtt ? '' : 'not ') . 'accepted');
is(header($r, 'X-Early'), $early, '0-RTT: revoked, $ssl_early_data');

# the revocation loader, forked by worker 0, holds none of its QUIC sockets

my @loaders = Mtls::loaders(Mtls::master_pid($t));
my %quic = map { $_ => 1 }
	quic_sockets(map { port($_, udp => 1) } 8943, 8944, 8945);
my ($worker) = Mtls::workers($t);

is(scalar @loaders, 1, 'loader: one');
is(scalar(grep { $quic{$_} } sockets($worker)), 3, 'worker: QUIC sockets');
is(join(' ', grep { $quic{$_} } map { sockets($_->[0]) } @loaders), '',
	'loader: no QUIC socket');

###############################################################################

# the inodes of the UDP sockets bound to these ports on 127.0.0.1

sub quic_sockets {
	my %ports = map { sprintf('0100007F:%04X', $_) => 1 } @_;
	my @inodes;

	open my $fh, '<', '/proc/net/udp' or return ();
	while (<$fh>) {
		my @f = split ' ';
		push @inodes, $f[9] if $ports{$f[1] // ''};
	}

	return @inodes;
}

# the inodes of a process's sockets

sub sockets {
	my ($pid) = @_;
	return map { (readlink($_) // '') =~ /^socket:\[(\d+)\]$/ ? $1 : () }
		glob "/proc/$pid/fd/*";
}

# one request on a new connection to UDP port($port) that resumes the
# session of a ticket; in list context also the client's view of the
# handshake

sub resumed {
	my ($cert, $port, %o) = @_;

	my $h3 = Mtls::H3->new(port => port($port, udp => 1),
		cert => "$d/$cert", ticket => "$d/$cert.ticket", resume => 1, %o)
		or return;
	my $r = $h3->get('/');
	my $info = $h3->info();
	$h3->close();

	return wantarray ? ($r, $info) : $r;
}

# writes a deny list of $t's atomically and waits until it is in force

sub revoke {
	my ($t, $name, $content) = @_;

	my $mark = Mtls::log_mark($t);
	Mtls::write_atomic("$d/$name", $content);
	Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/\Q$name\E"/)
		or diag("no reload of $name logged");
}

sub revoke_crl {
	my ($t, $name, %o) = @_;

	my $mark = Mtls::log_mark($t);
	$pki->crl($name, %o);
	Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/\Q$name\E"/)
		or diag("no reload of $name logged");
}

###############################################################################
