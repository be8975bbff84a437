#!/usr/bin/perl

# Tests for scripts/mtls-pki: the CA, server, client and intermediate
# certificates it makes (checked with openssl), what it refuses, revocation
# and CRLs, PKCS#12 bundles; and that a revoked certificate is denied by
# the module (mtls_deny_serial) and by nginx's ssl_crl with its CRL.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(44);

my $d = $t->testdir();
my $pki = "$d/pki";

$ENV{MTLS_PKI_DIR} = $pki;
delete $ENV{MTLS_PKI_PASSPHRASE};
delete $ENV{MTLS_PKI_P12_PASSWORD};

###############################################################################

# The root CA.

my ($rc, $out) = pki('--help');
ok($rc == 0 && $out =~ /^\s+init\s.*^\s+server\s.*^\s+client\s.*
	^\s+intermediate\s.*^\s+revoke\s.*^\s+crl\s.*^\s+p12\s.*^\s+list$/smx,
	'help');

($rc, $out) = pki('init');
ok($rc == 1 && $out =~ /set MTLS_PKI_PASSPHRASE/ && !-e "$pki/ca/root/ca.key",
	'init: no passphrase refused');

$ENV{MTLS_PKI_PASSPHRASE} = 'test passphrase';
is((pki('init', '--o', 'Example', '--cn', 'Test Root CA'))[0], 0, 'init');

my $key = read_file("$pki/ca/root/ca.key");
ok($key =~ /^-----BEGIN ENCRYPTED PRIVATE KEY-----$/m
	&& system("openssl pkey -in $pki/ca/root/ca.key -passin pass:wrong "
		. "-noout 2>/dev/null") != 0, 'init: key encrypted');
like(x509('ca.crt', '-text'), qr/Signature\ Algorithm:\ ecdsa-with-SHA256.*
	NIST\ CURVE:\ P-256.*Basic\ Constraints:\ critical\s+CA:TRUE.*
	Key\ Usage:\ critical\s+Certificate\ Sign,\ CRL\ Sign/sx,
	'init: EC P-256 CA, SHA-256');

($rc, $out) = pki('init', '--no-passphrase');
ok($rc == 1 && $out =~ /already has a CA/
	&& read_file("$pki/ca/root/ca.key") eq $key, 'init again refused');

($rc, $out) = pki('--dir', "$d/rsa", 'init', '--rsa', '--no-passphrase',
	'--crl-url', 'http://pki.example.com/root.crl');
ok($rc == 0 && read_file("$d/rsa/ca/root/ca.key")
	=~ /^-----BEGIN PRIVATE KEY-----$/m
	&& x509("$d/rsa/ca.crt", '-text')
	=~ /sha256WithRSAEncryption.*Public-Key: \(4096 bit\)/s,
	'init --rsa --no-passphrase');
pki('--dir', "$d/rsa", 'client', 'x');
like(x509("$d/rsa/certs/x.crt", '-text'), qr/Public-Key:\ \(2048\ bit\).*
	CRL\ Distribution\ Points:\s+Full\ Name:\s+
	URI:http:\/\/pki\.example\.com\/root\.crl\s/sx,
	'RSA client, CRL distribution point');

# Servers and clients.

is((pki('server', 'www', '--san', 'DNS:localhost,IP:127.0.0.1'))[0], 0,
	'server');
like(verify('sslserver', 'certs/www.crt'), qr/: OK$/, 'server: verifies');
like(x509('certs/www.crt', '-ext', 'extendedKeyUsage'),
	qr/^\s+TLS Web Server Authentication\s*$/m, 'server: serverAuth only');
like(x509('certs/www.crt', '-ext', 'subjectAltName'),
	qr/^\s+DNS:localhost, IP Address:127\.0\.0\.1\s*$/m, 'server: SANs');

is((pki('client', 'alice', '--o', 'Example', '--san',
	'email:alice@example.com,dns:alice.example.com,'
	. 'uri:https://id.example.com/alice'))[0], 0, 'client');
like(verify('sslclient', 'certs/alice.crt'), qr/: OK$/, 'client: verifies');
like(x509('certs/alice.crt', '-ext', 'extendedKeyUsage'),
	qr/^\s+TLS Web Client Authentication\s*$/m, 'client: clientAuth only');
my $sans = 'email:alice@example.com, DNS:alice.example.com, '
	. 'URI:https://id.example.com/alice';
like(x509('certs/alice.crt', '-ext', 'subjectAltName'), qr/^\s+\Q$sans\E\s*$/m,
	'client: SANs');
# RFC 2253 form (last RDN first): OpenSSL 3.5's default form has no spaces
# around '=', 3.0's has.
like(x509('certs/alice.crt', '-subject', '-nameopt', 'RFC2253'),
	qr/^subject=CN=alice,O=Example$/, 'client: subject as given');

pki(qw(client svc --spiffe spiffe://example.org/ns/prod/sa/api --days 7));
like(x509('certs/svc.crt', '-ext', 'subjectAltName'),
	qr/Name:\s+URI:spiffe:\/\/example\.org\/ns\/prod\/sa\/api\s*$/s,
	'client --spiffe: one URI SAN');
ok(system("openssl x509 -in $pki/certs/svc.crt -noout -checkend 518400"
	. " >/dev/null") == 0
	&& system("openssl x509 -in $pki/certs/svc.crt -noout -checkend 691200"
	. " >/dev/null") != 0, 'client --days 7');

# An intermediate CA and its clients.

pki(qw/intermediate sub --o Example --cn/, 'Sub CA');
like(x509('ca/sub/ca.crt', '-ext', 'basicConstraints'),
	qr/critical\s+CA:TRUE, pathlen:0\s*$/, 'intermediate: pathlen:0');

pki(qw/client bob --ca sub/);
pki(qw/client dave --ca sub/);
ok(verify('sslclient', 'ca/sub/ca.crt', 'certs/bob.crt') =~ /: OK$/
	&& verify('sslclient', 'certs/bob.crt') !~ /: OK$/,
	'client --ca: issued by the intermediate');
is(read_file("$pki/certs/bob.chain.crt"),
	read_file("$pki/certs/bob.crt") . read_file("$pki/ca/sub/ca.crt"),
	'chain: certificate, intermediate');

# Refusals.

($rc, $out) = pki(qw/client alice/);
like("$rc $out", qr/^1 .*"alice" already exists/s, 'duplicate name refused');
($rc, $out) = pki(qw/client carol --bogus/);
like("$rc $out", qr/^2 .*unknown option --bogus/s, 'unknown option refused');
($rc, $out) = pki('--dir', "$d/empty", 'client', 'carol');
like("$rc $out", qr/^1 .*no CA in .*mtls-pki init/s, 'missing CA refused');
ok((pki('client', 'a/b'))[0] == 1 && (pki('client', '..x'))[0] == 1
	&& !-e "$pki/certs/a" && !-e "$pki/certs/..x.key", 'unsafe names refused');
$t->write_file('eve.key', 'not a key');
system("cp $d/eve.key $pki/certs/eve.key") == 0 or die "Can't copy\n";
($rc, $out) = pki(qw/client eve/);
ok($rc == 1 && $out =~ /never overwrites/
	&& read_file("$pki/certs/eve.key") eq 'not a key', 'key not overwritten');
($rc, $out) = pki(qw/client carol --ca nosuch/);
like("$rc $out", qr/^1 .*no CA named "nosuch"/s, 'unknown CA refused');

pki(qw/client carol/);

my %list = list();
my @serials = map { $_->{serial} } values %list;
my %unique = map { $_ => 1 } @serials;
ok(@serials == 7 && keys %unique == 7
	&& (grep { $_->{status} eq 'valid' } values %list) == 7,
	'list: 7 valid certificates, distinct serials');

# Revocation.

my $crl_number = crl_number('ca/root/crl.pem');
pki(qw/revoke alice --reason keyCompromise/);
my $alice = $list{alice}{serial};

%list = list();
is($list{alice}{status}, 'revoked', 'revoke NAME');
ok(`openssl crl -in $pki/ca/root/crl.pem -CAfile $pki/ca.crt -noout 2>&1`
	=~ /verify OK/
	&& `openssl crl -in $pki/ca/root/crl.pem -noout -text`
	=~ /Serial\ Number:\ $alice\s+Revocation\ Date:\ [^\n]+\n\s+
	CRL\ entry\ extensions:\s+X509v3\ CRL\ Reason\ Code:\s+
	Key\ Compromise/x,
	'revoked serial in the CRL');
pki('crl');
ok(crl_number('ca/root/crl.pem') > $crl_number + 1,
	'crlNumber grows with each CRL');

(my $carol = '00' . lc $list{carol}{serial}) =~ s/(..)(?=.)/$1:/g;
pki('revoke', $carol);
($rc, $out) = pki('revoke', 'carol');
%list = list();
ok($list{carol}{status} eq 'revoked' && $rc == 1
	&& $out =~ /already revoked/, 'revoke SERIAL, once');

pki(qw/revoke bob/);
like(`openssl crl -in $pki/ca/sub/crl.pem -noout -text -nameopt RFC2253`,
	qr/Issuer: CN=Sub CA,O=Example.*Serial Number: $list{bob}{serial}/s,
	'intermediate revocation in its CRL');
is(scalar(() = read_file("$pki/crl.pem") =~ /BEGIN X509 CRL/g), 2,
	'CRL bundle');
ok(read_file("$pki/deny-serials.conf") =~ /^mtls_deny_serial\s.*$alice/ms
	&& read_file("$pki/deny-list.txt") =~ /^$alice$/m, 'deny lists');

# PKCS#12.

$ENV{MTLS_PKI_P12_PASSWORD} = 'p12 password';
pki(qw/p12 dave/);
my $p12 = "openssl pkcs12 -in $pki/certs/dave.p12 -nodes "
	. '-passin env:MTLS_PKI_P12_PASSWORD 2>/dev/null';
$p12 = `$p12`;
is(scalar(() = $p12 =~ /^-----BEGIN (?:CERTIFICATE|PRIVATE KEY)-----$/mg), 4,
	'p12: key, certificate, chain');
($rc, $out) = pki(qw/p12 dave/);
like("$rc $out", qr/^1 .*exists/s, 'p12 not overwritten');

###############################################################################

# The module and nginx with what the PKI made.

(my $conf = <<'EOF') =~ s/ALICE/$alice/;

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Mtls "$mtls_decision $mtls_reason" always;

    ssl_certificate         pki/certs/www.crt;
    ssl_certificate_key     pki/certs/www.key;
    ssl_client_certificate  pki/ca.crt;
    ssl_verify_client       on;
    ssl_verify_depth        2;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        location /serial/ {
            mtls_deny_serial  ALICE;
        }

        location /file/ {
            include  pki/deny-serials.conf;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_crl  pki/crl.pem;
    }
}

EOF

$t->write_file_expand('nginx.conf', $conf);
$t->write_file('index.html', 'ok');
for my $dir (qw/serial file/) {
	mkdir "$d/$dir" or die "Can't create $d/$dir: $!\n";
	$t->write_file("$dir/index.html", 'ok');
}

$t->run();

like(get(8443, '/serial/', 'alice'), qr/ 403 .*X-Mtls: deny serial_denied/s,
	'mtls_deny_serial: revoked denied');
like(get(8443, '/serial/', 'dave'), qr/ 200 .*X-Mtls: allow /s,
	'mtls_deny_serial: valid allowed');
like(get(8443, '/file/', 'alice'), qr/ 403 .*X-Mtls: deny serial_denied/s,
	'deny-serials.conf');
like(get(8444, '/', 'alice'), qr/ 400 /, 'ssl_crl: revoked refused');
like(get(8444, '/', 'bob'), qr/ 400 /, 'ssl_crl: revoked by intermediate');
like(get(8444, '/', 'dave'), qr/ 200 /, 'ssl_crl: valid through intermediate');

###############################################################################

# scripts/mtls-pki without a terminal: its exit code and output.
sub pki {
	my $log = "$d/mtls-pki.out";
	open my $stdin, '<&', \*STDIN or die "Can't dup STDIN: $!\n";
	open my $stdout, '>&', \*STDOUT or die "Can't dup STDOUT: $!\n";
	open my $stderr, '>&', \*STDERR or die "Can't dup STDERR: $!\n";
	open STDIN, '<', '/dev/null' or die "Can't open /dev/null: $!\n";
	open STDOUT, '>', $log or die "Can't open $log: $!\n";
	open STDERR, '>&', \*STDOUT or die "Can't redirect STDERR: $!\n";
	my $rc = system("$FindBin::Bin/../scripts/mtls-pki", @_);
	open STDIN, '<&', $stdin or die "Can't restore STDIN: $!\n";
	open STDOUT, '>&', $stdout or die "Can't restore STDOUT: $!\n";
	open STDERR, '>&', $stderr or die "Can't restore STDERR: $!\n";

	my $out = read_file($log);
	open my $all, '>>', "$d/mtls-pki.log" or die "Can't open log: $!\n";
	print {$all} "\$ mtls-pki @_\n$out";
	close $all;
	return ($rc == -1 ? -1 : $rc >> 8, $out);
}

# name => { kind, ca, serial, status } from "mtls-pki list".
sub list {
	my ($rc, $out) = pki('list');
	my %list;
	for (split /\n/, $out) {
		my ($name, $kind, $ca, $serial, $status) = split;
		next if $name eq 'NAME';
		$list{$name} = { kind => $kind, ca => $ca, serial => $serial,
			status => $status };
	}
	return %list;
}

sub x509 {
	my ($file, @options) = @_;
	$file = "$pki/$file" unless $file =~ m{^/};
	return `openssl x509 -in $file -noout @options 2>&1`;
}

# openssl verify against the root, with an intermediate if given.
sub verify {
	my ($purpose, @files) = @_;
	my $untrusted = @files > 1 ? "-untrusted $pki/$files[0]" : '';
	my $command = "openssl verify -CAfile $pki/ca.crt -purpose $purpose "
		. "$untrusted $pki/$files[-1]";
	return `$command 2>&1`;
}

sub crl_number {
	my ($file) = @_;
	my ($number) = `openssl crl -in $pki/$file -noout -crlnumber`
		=~ /crlNumber=0x([0-9A-Fa-f]+)/;
	return hex($number // 0);
}

sub get {
	my ($port, $uri, $client) = @_;
	return http_get($uri, SSL => 1, PeerAddr => '127.0.0.1:' . port($port),
		SSL_cert_file => "$pki/certs/$client.chain.crt",
		SSL_key_file => "$pki/certs/$client.key");
}

sub read_file {
	my ($path) = @_;
	open my $fh, '<', $path or return '';
	local $/;
	return scalar <$fh>;
}

###############################################################################
