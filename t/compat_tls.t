#!/usr/bin/perl

# Tests for the mtls module: nginx's own TLS client verification is
# unchanged.  The same configuration runs three times: without the module
# (A), with the module loaded but no mtls directive (B), and with the module
# used in every server (C).  A and B must answer every client alike;
# in C, ssl_verify_client, ssl_crl, ssl_ocsp, the $ssl_client_* variables
# and session resumption still behave as nginx documents them, the module
# deciding only on what nginx lets through.

###############################################################################

use warnings;
use strict;

use Test::More;

use Digest::SHA qw/sha1_hex/;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

# the globals of A: TEST_NGINX_GLOBALS without the module's load_module

my $globals = $ENV{TEST_NGINX_GLOBALS} // '';
(my $without = $globals) =~ s/load_module\s+\S*mtls\S*\s*;//g;

plan(skip_all => 'TEST_NGINX_GLOBALS does not load the module')
	if $without eq $globals;

# B and C, other instances, add Test::Nginx's two checks of the error log
# at the end, as $t does

my $t = Test::Nginx->new()->has(qw/http http_ssl socket_ssl_reused/)
	->has_daemon('openssl')->plan(52 + 2 * 2);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');
$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	san => 'DNS:alice.example.com');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol');
$pki->leaf('old', ca => 'ca', subj => '/O=Example/CN=alice',
	startdate => '20200101000000Z', enddate => '20200201000000Z');
$pki->self_signed('self', subj => '/O=Example/CN=alice');
$pki->ca('other', subj => '/O=Example/CN=Other CA');
$pki->leaf('eve', ca => 'other', subj => '/O=Example/CN=alice');

# bob is revoked in the CRL (ssl_crl), carol by the OCSP responder

$pki->crl('ca.crl', ca => 'ca', revoke => [ 'bob' ]);

my $expiry = '351231235959Z';
my $index = '';
for my $name (qw/alice bob carol old/) {
	my $status = $name eq 'carol' ? "R\t$expiry\t251101000000Z" : "V\t$expiry\t";
	$index .= "$status\t" . serial_hex("$d/$name.crt")
		. "\tunknown\t/O=Example/CN=$name\n";
}
$t->write_file('ocsp-index.txt', $index);


# the servers, "X" the digit of the instance in the port numbers; __MTLS__
# the module's directives of instance C

my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Verify $ssl_client_verify always;
    add_header X-S-DN $ssl_client_s_dn always;
    add_header X-I-DN $ssl_client_i_dn always;
    add_header X-Serial $ssl_client_serial always;
    add_header X-FP $ssl_client_fingerprint always;
    add_header X-Cert $ssl_client_escaped_cert always;
    add_header X-V-End $ssl_client_v_end always;
    add_header X-Reused $ssl_session_reused always;
    __HEADERS__

    ssl_certificate __PKI__/localhost.crt;
    ssl_certificate_key __PKI__/localhost.key;
    ssl_client_certificate __PKI__/ca.crt;

    server {
        listen       127.0.0.1:%%PORT_8X43%% ssl;
        server_name  localhost;
        ssl_verify_client on;
        __MTLS__
        location / { try_files /ok =404; }
    }

    server {
        listen       127.0.0.1:%%PORT_8X44%% ssl;
        server_name  localhost;
        ssl_verify_client optional;
        __MTLS__
        location / { try_files /ok =404; }
    }

    server {
        listen       127.0.0.1:%%PORT_8X45%% ssl;
        server_name  localhost;
        ssl_verify_client optional_no_ca;
        __MTLS__
        location / { try_files /ok =404; }
    }

    server {
        listen       127.0.0.1:%%PORT_8X46%% ssl;
        server_name  localhost;
        ssl_verify_client on;
        ssl_crl __PKI__/ca.crl;
        __MTLS__
        location / { try_files /ok =404; }
    }

    server {
        listen       127.0.0.1:%%PORT_8X47%% ssl;
        server_name  localhost;
        ssl_verify_client on;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;
        __MTLS__
        location / { try_files /ok =404; }
    }

    server {
        listen       127.0.0.1:%%PORT_8X48%% ssl;
        server_name  localhost;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets on;
        __MTLS__
        location / { try_files /ok =404; }
    }

    server {
        listen       127.0.0.1:%%PORT_8X49%% ssl;
        server_name  localhost;
        ssl_verify_client on;
        ssl_ocsp on;
        ssl_ocsp_responder http://127.0.0.1:%%PORT_8081%%;
        __MTLS__
        location / { try_files /ok =404; }
    }
}

EOF

$conf =~ s/__PKI__/$d/g;

my %instance;

{
	local $ENV{TEST_NGINX_GLOBALS} = $without;
	$instance{A} = instance($t, $conf, 4, '', '');
}

$instance{B} = instance(Test::Nginx->new(), $conf, 5, '', '');
$instance{C} = instance(Test::Nginx->new(), $conf, 6,
	'add_header X-Decision $mtls_decision always; '
	. 'add_header X-Reason $mtls_reason always;',
	'mtls_allow_cn alice carol;');

my ($A, $B, $C) = @instance{qw/A B C/};

$t->run_daemon(sub {
	open STDOUT, '>', "$d/ocsp.log" or die "ocsp.log: $!\n";
	open STDERR, '>&', \*STDOUT or die "dup: $!\n";
	exec('openssl', 'ocsp', '-index', "$d/ocsp-index.txt",
		'-port', port(8081), '-rsigner', "$d/ca.crt", '-rkey', "$d/ca.key",
		'-CA', "$d/ca.crt", '-ignore_err')
		or die "exec openssl: $!\n";
});

# not waitforsocket(): a connection closed without a request blocks the
# responder of OpenSSL 3.0 for good

Mtls::wait_for(sub { -e "$d/ocsp.log"
		&& Mtls::slurp("$d/ocsp.log") =~ /waiting for OCSP client/ })
	or die "no OCSP responder\n";

$_->run() for $A, $B, $C;

###############################################################################

# A really runs without the module, B and C with it

unlike($A->read_file('nginx.conf'), qr/load_module \S*mtls/,
	'A: module not loaded');
like($B->read_file('nginx.conf'), qr/load_module \S*mtls/, 'B: module loaded');

{
	local $ENV{TEST_NGINX_GLOBALS} = $without;
	like(nginx_t($A, "%%TEST_GLOBALS%%\nevents {}\nhttp { mtls on; }\n"),
		qr/unknown directive "mtls"/, 'A: no mtls directive');
}

# A and B answer every client alike, in every server

my @certs = (undef, qw/alice bob carol old self eve/);
my @vars = qw/X-Verify X-S-DN X-I-DN X-Serial X-FP X-Cert X-V-End/;
my %servers = (43 => 'on', 44 => 'optional', 45 => 'optional_no_ca',
	46 => 'ssl_crl', 47 => 'session cache', 48 => 'session tickets',
	49 => 'ssl_ocsp');

for my $server (sort keys %servers) {
	my @a = map { view(get('A', $server, $_)) } @certs;
	my @b = map { view(get('B', $server, $_)) } @certs;

	is(join("\n\n", @b), join("\n\n", @a),
		"A and B: same answers, $servers{$server}");
}

# what they are, as nginx documents it

my %no_cert = (status => 400, page => 'No required SSL certificate was sent');
my %cert_error = (status => 400, page => 'The SSL certificate error');

answer('A', 43, undef, %no_cert, verify => 'NONE');
answer('A', 43, 'alice', status => 200, verify => 'SUCCESS');
answer('A', 43, 'eve', %cert_error, verify => qr/^FAILED:/);
answer('A', 43, 'self', %cert_error, verify => qr/^FAILED:/);
answer('A', 43, 'old', %cert_error, verify => 'FAILED:certificate has expired');
answer('A', 44, undef, status => 200, verify => 'NONE');
answer('A', 44, 'eve', %cert_error);
answer('A', 45, 'eve', status => 200, verify => qr/^FAILED:/);
answer('A', 45, 'self', status => 200, verify => qr/^FAILED:/);
answer('A', 45, 'old', %cert_error);
answer('A', 46, 'bob', %cert_error, verify => 'FAILED:certificate revoked');
answer('A', 46, 'alice', status => 200, verify => 'SUCCESS');
answer('A', 49, 'carol', %cert_error, verify => 'FAILED:certificate revoked');
answer('A', 49, 'alice', status => 200, verify => 'SUCCESS');

# the variables of a verified certificate

my $r = get('A', 43, 'alice');
my $pem = Mtls::slurp("$d/alice.crt");
(my $escaped = $pem) =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;

is(header($r, 'X-S-DN'), 'CN=alice,O=Example', '$ssl_client_s_dn');
is(header($r, 'X-I-DN'), 'CN=Test CA,O=Example', '$ssl_client_i_dn');
is(header($r, 'X-Serial'), serial_hex("$d/alice.crt"), '$ssl_client_serial');
is(header($r, 'X-FP'), sha1_hex(Mtls::cert_der("$d/alice.crt")),
	'$ssl_client_fingerprint');
is(header($r, 'X-Cert'), $escaped, '$ssl_client_escaped_cert');

# session resumption: nginx's cache (TLSv1.2) and tickets (TLSv1.3)

for my $i ('A', 'B', 'C') {
	for my $case ([ 47, 'TLSv1_2', 'cache' ], [ 48, 'TLSv1_3', 'tickets' ]) {
		my ($server, $version, $name) = @$case;

		my $ctx = Mtls::client_ctx("$d/alice", $version);
		my $port = port("8" . digit($i) . $server);
		my $full = Mtls::resumed_get($port, $ctx, '/');
		my $again = Mtls::resumed_get($port, $ctx, '/');

		is(header($full, 'X-Reused') . header($again, 'X-Reused')
			. ' ' . status($again) . ' ' . header($again, 'X-S-DN'),
			'.r 200 CN=alice,O=Example', "$i: $name, resumed");
	}
}

###############################################################################

# C: nginx decides first; the module only on what nginx lets through

# ssl_verify_client on: without a certificate, or with one that does not
# verify, nginx answers 400 before the access phase

answer('C', 43, undef, %no_cert, verify => 'NONE');
answer('C', 43, 'eve', %cert_error, verify => qr/^FAILED:/);
answer('C', 43, 'old', %cert_error, verify => 'FAILED:certificate has expired');
answer('C', 43, 'alice', status => 200, decision => 'allow');
answer('C', 43, 'bob', status => 403, decision => 'deny',
	reason => 'not_allowed', verify => 'SUCCESS');

# optional: no certificate, nginx lets it through, the module denies it

answer('C', 44, undef, status => 403, decision => 'deny', reason => 'no_cert',
	verify => 'NONE');
answer('C', 44, 'eve', %cert_error);

# optional_no_ca: nginx lets an unknown issuer through, the module does
# not; an expired certificate nginx refuses itself

answer('C', 45, 'eve', status => 403, decision => 'deny',
	reason => 'unverified', verify => qr/^FAILED:/);
answer('C', 45, 'self', status => 403, decision => 'deny',
	reason => 'unverified');
answer('C', 45, 'old', %cert_error);

# ssl_crl and ssl_ocsp reject a revoked certificate with 400, before the
# module's allow rules are looked at

answer('C', 46, 'bob', %cert_error, verify => 'FAILED:certificate revoked');
answer('C', 46, 'alice', status => 200, decision => 'allow');
answer('C', 49, 'carol', %cert_error, verify => 'FAILED:certificate revoked');
answer('C', 49, 'alice', status => 200, decision => 'allow');

# the $ssl_client_* variables are the same with the module in use

for my $cert (qw/alice eve/) {
	my $a = get('A', 45, $cert);
	my $c = get('C', 45, $cert);

	is(join("\n", map { header($c, $_) } @vars),
		join("\n", map { header($a, $_) } @vars),
		"C: \$ssl_client_* as without the module, $cert");
}

# loaded but unused, the module says nothing (a word "mtls", not four
# letters of a certificate's base64 in nginx's own debug lines)

is(join("\n", $B->read_file('error.log')
	=~ /^(.*(?<![A-Za-z0-9+\/])mtls(?![A-Za-z0-9+\/=]).*)$/mgi), '',
	'B: nothing logged by the module');

###############################################################################

# a Test::Nginx instance given the configuration, ports 8X43..8X49 (the
# instance is passed, not $t named here: a sub that names $t would keep it
# until global destruction, too late for its checks at the end)

sub instance {
	my ($i, $conf, $digit, $headers, $mtls) = @_;

	$conf =~ s/8X/8$digit/g;
	$conf =~ s/__HEADERS__/$headers/;
	$conf =~ s/__MTLS__/$mtls/g;
	$i->write_file_expand('nginx.conf', $conf);
	$i->write_file('ok', "ok\n");

	return $i;
}

sub digit {
	my ($i) = @_;
	return { A => 4, B => 5, C => 6 }->{$i};
}

sub get {
	my ($i, $server, $cert) = @_;

	return https_get(port('8' . digit($i) . $server), '/',
		defined $cert ? "$d/$cert" : undef);
}

sub status {
	my ($r) = @_;
	return 'no response' unless defined $r;
	return $r =~ m!^HTTP/1\.[01] (\d{3})! ? $1 : 'bad status line';
}

# what a client sees of a response: status, variables, body (the error
# pages name nginx's reason)

sub view {
	my ($r) = @_;

	return 'no response' unless defined $r;

	my ($body) = $r =~ /\x0d\x0a\x0d\x0a(.*)\z/s;

	return join "\n", status($r),
		(map { "$_: " . header($r, $_) } @vars, 'X-Reused'),
		$body // '';
}

# checks one answer of an instance: status, error page, $ssl_client_verify,
# the module's decision and reason

sub answer {
	my ($i, $server, $cert, %want) = @_;

	my $r = get($i, $server, $cert);
	my $name = "$i: $servers{$server}, " . ($cert // 'no certificate');

	my @got = (status($r));
	my @want = ($want{status});

	if (defined $want{page}) {
		push @got, ($r // '') =~ /<center>\Q$want{page}\E<\/center>/
			? 'page' : 'no page';
		push @want, 'page';
	}

	if (defined $want{decision}) {
		push @got, header($r, 'X-Decision') // '',
			header($r, 'X-Reason') // '';
		push @want, $want{decision}, $want{reason} // '';
	}

	my $verify = header($r, 'X-Verify') // '';

	if (ref $want{verify}) {
		push @got, $verify =~ $want{verify} ? 'verify ok' : $verify;
		push @want, 'verify ok';

	} elsif (defined $want{verify}) {
		push @got, $verify;
		push @want, $want{verify};
	}

	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is("@got", "@want", $name);
}

###############################################################################
