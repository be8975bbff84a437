#!/usr/bin/perl

# Tests for the example configurations in nginx-conf/: each one, its
# placeholders replaced, passes "nginx -t" on its own, and admits and
# refuses clients as its comments say, with certificates made by
# scripts/mtls-pki.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()
	->has(qw/http http_ssl proxy upstream_keepalive auth_request/)
	->has_daemon('openssl')->plan(48);

my $d = $t->testdir();
my $pki = "$d/pki";

# Logical port of each example's server.
my %examples = (
	'admin-panel' => 8443,
	'api-gateway' => 8444,
	'service-mesh-spiffe' => 8445,
	'iot-fleet' => 8446,
	'optional-mtls' => 8447,
	'bound-tokens' => 8448,
	'ocsp' => 8450,
);

# The certificates the examples' comments describe, and more clients to be
# refused.

$ENV{MTLS_PKI_PASSPHRASE} = 'examples passphrase';

pki('init', '--o', 'Example', '--cn', 'Example Root CA');
pki('server', $_) for qw/admin.example.com api.example.com portal.example.com
	devices.iot.example.com www.example.com/;
pki('intermediate', 'mesh', '--o', 'Example', '--cn', 'Mesh Workload CA');
pki(qw/server orders --ca mesh --san DNS:orders.shop.example.org/);

pki(qw/client alice --o Example/);
pki(qw/client bob --o Example/);
pki(qw/client carol --o Example/);
pki('client', 'acme', '--o', 'ACME Corp',
	'--san', 'dns:acme.partners.example.com');
pki(qw(client billing --spiffe spiffe://example.org/ns/billing/sa/api));
pki(qw/client stranger/);

pki(qw/client checkout --ca mesh/,
	'--spiffe', 'spiffe://example.org/ns/shop/sa/checkout');
pki(qw(client cart --ca mesh --spiffe spiffe://example.org/ns/shop/sa/cart));
pki(qw/client prometheus --ca mesh/,
	'--spiffe', 'spiffe://example.org/ns/monitoring/sa/prometheus');
# Same ID as checkout, signed by the root rather than the mesh CA.
pki(qw(client impostor --spiffe spiffe://example.org/ns/shop/sa/checkout));

pki(qw/client sensor-0001 --o Example --ou sensors/);
pki(qw/client sensor-0002 --o Example --ou sensors/);
pki(qw/client gw-01 --o Example --ou gateways/,
	'--san', 'dns:gw-01.gw.iot.example.com');
pki(qw/client fleet-operator --o Example --ou operations/);
pki(qw/client sensor-0003 --o Example --ou sensors/);
pki(qw/client alice-laptop --cn alice --o Example/);

pki(qw/revoke bob/);
pki(qw/revoke sensor-0002/);

# Another CA's client, with a name the examples allow.
pki('--dir', "$d/other", 'init', '--no-passphrase');
pki('--dir', "$d/other", 'client', 'alice');

for my $name (sort keys %examples) {
	my $conf = read_file("$FindBin::Bin/../nginx-conf/$name.conf");
	$conf =~ s/%%PKI%%/$pki/g;
	$conf =~ s/%%PORT%%/'127.0.0.1:' . port($examples{$name})/ge;
	$conf =~ s/%%UPSTREAM_PORT%%/port(8081)/ge;
	# No responder listens there: the example's failure paths.
	$conf =~ s/%%OCSP%%/'http:\/\/127.0.0.1:' . port(8449) . '\/'/ge;
	$t->write_file("$name.conf", $conf);

	(my $alone = <<'EOF') =~ s/NAME/$name/;

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    include NAME.conf;
}

EOF
	$t->write_file_expand("alone-$name.conf", $alone);
}

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    # The application behind every example: says what it was sent.
    server {
        listen       127.0.0.1:%%PORT_8081%%;
        server_name  localhost;

        location / {
            return 200 "uri=$uri cn=$http_x_client_cn serial=$http_x_client_serial subject=$http_x_client_subject spiffe=$http_x_client_spiffe_id sha256=$http_x_client_cert_sha256 device=$http_x_device_id cert=$http_client_cert chain=$http_client_cert_chain auth=$http_authorization\n";
        }

        # The token service of bound-tokens: a token "bound-to-X" is
        # bound to the certificate whose thumbprint is X.
        location = /token-check {
            if ($http_x_client_cert_thumbprint = "") {
                return 401;
            }
            if ($http_authorization = "Bearer bound-to-$http_x_client_cert_thumbprint") {
                return 204;
            }
            return 401;
        }
    }

    include admin-panel.conf;
    include api-gateway.conf;
    include service-mesh-spiffe.conf;
    include iot-fleet.conf;
    include optional-mtls.conf;
    include bound-tokens.conf;
    include ocsp.conf;
}

EOF

###############################################################################

for my $name (sort keys %examples) {
	like(nginx_t("alone-$name.conf"), qr/test is successful/,
		"$name: nginx -t");
}

$t->run();

# admin-panel: CN allowlist, revoked serials from deny-list.txt, the
# application's own login passes through.

like(get('admin-panel', '/', 'alice'), qr/ 200 .*cn=alice /s,
	'admin: alice allowed');
like(get('admin-panel', '/', 'alice', "X-Client-CN: mallory\r\n"
	. "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"),
	qr/cn=alice .*auth=Basic YWxpY2U6c2VjcmV0$/m,
	'admin: login kept, identity not forged');
is(status(get('admin-panel', '/', 'carol')), 403, 'admin: carol denied');
is(status(get('admin-panel', '/', 'bob')), 403, 'admin: bob revoked');
is(status(get('admin-panel', '/')), 400, 'admin: no certificate');

is(status(get('admin-panel', '/', 'alice-laptop')), 200,
	'admin: second certificate of alice');
pki(qw/revoke alice-laptop/);
is(eventually(403, 'admin-panel', '/', 'alice-laptop'), 403,
	'admin: revoked without a reload');
is(status(get('admin-panel', '/', 'alice')), 200,
	'admin: alice\'s other certificate still allowed');

# api-gateway: partners by DNS SAN, services by SPIFFE ID; identity headers.

my $acme = get('api-gateway', '/v1/orders', 'acme');
my $serial = cert_field('acme', '-serial');
(my $sha256 = lc cert_field('acme', '-fingerprint', '-sha256')) =~ s/://g;

like($acme, qr/ 200 .*cn=acme serial=$serial subject=CN=acme,O=ACME Corp /s,
	'api: partner allowed, identity forwarded');
like($acme, qr/ sha256=$sha256 /, 'api: fingerprint forwarded');
like(get('api-gateway', '/v1/orders', 'billing'),
	qr/ 200 .* spiffe=spiffe:\/\/example\.org\/ns\/billing\/sa\/api /s,
	'api: service allowed');
is(status(get('api-gateway', '/v1/orders', 'stranger')), 403,
	'api: stranger denied');

# service-mesh-spiffe: per-path SPIFFE IDs, only from the mesh CA.

like(get('service-mesh-spiffe', '/orders/1', 'checkout'),
	qr/ 200 .* spiffe=spiffe:\/\/example\.org\/ns\/shop\/sa\/checkout /s,
	'mesh: checkout places orders');
is(status(get('service-mesh-spiffe', '/orders/1', 'cart')), 403,
	'mesh: cart may not place orders');
is(status(get('service-mesh-spiffe', '/cart/1', 'cart')), 200,
	'mesh: cart allowed by namespace');
is(status(get('service-mesh-spiffe', '/orders/1', 'impostor')), 403,
	'mesh: same ID from the root denied');
is(status(get('service-mesh-spiffe', '/metrics', 'prometheus')), 200,
	'mesh: monitoring allowed');
is(status(get('service-mesh-spiffe', '/metrics', 'checkout')), 403,
	'mesh: checkout may not read metrics');

# iot-fleet: the module's live CRL, then a policy per location.

like(get('iot-fleet', '/telemetry/1', 'sensor-0001'),
	qr/ 200 .* device=sensor-0001 /s, 'iot: sensor reports');
is(status(get('iot-fleet', '/telemetry/1', 'sensor-0002')), 403,
	'iot: revoked sensor refused');
is(status(get('iot-fleet', '/telemetry/1', 'sensor-0003')), 200,
	'iot: another sensor reports');
pki(qw/revoke sensor-0003/);
is(eventually(403, 'iot-fleet', '/telemetry/1', 'sensor-0003'), 403,
	'iot: sensor revoked at the CA, new CRL applied without a reload');
is(status(get('iot-fleet', '/firmware/1', 'sensor-0001')), 403,
	'iot: sensor may not download firmware');
is(status(get('iot-fleet', '/firmware/1', 'gw-01')), 200,
	'iot: gateway downloads firmware');
is(status(get('iot-fleet', '/admin/', 'fleet-operator')), 200,
	'iot: operator manages');
is(status(get('iot-fleet', '/admin/', 'sensor-0001')), 403,
	'iot: sensor may not manage');
like(get('iot-fleet', '/admin/', 'fleet-operator', "X-Device-ID: gw-01\r\n"),
	qr/ 200 .* device= cert=/s, 'iot: X-Device-ID not forged');

# optional-mtls: public pages without a certificate, protected ones with.

is(status(get('optional-mtls', '/')), 200, 'optional: public page');
is(status(get('optional-mtls', '/account/')), 403,
	'optional: account needs a certificate');
like(get('optional-mtls', '/account/', 'alice'), qr/ 200 .*cn=alice /s,
	'optional: account with a certificate');
is(status(get('optional-mtls', '/partners/', 'alice')), 403,
	'optional: partners only');
is(status(get('optional-mtls', '/partners/', 'acme')), 200,
	'optional: partner');
is(status(get('optional-mtls', '/', 'alice', '', "$d/other")), 400,
	'optional: certificate of another CA refused');

# bound-tokens: a token bound to the caller's certificate passes, one bound
# to another certificate does not; the API gets the RFC 9440 headers.

my $alice_x5t = x5t('alice');
my $bound = get('bound-tokens', '/api/orders', 'alice',
	"Authorization: Bearer bound-to-$alice_x5t\r\n");
like($bound, qr/ 200 .*uri=\/api\/orders /s, 'bound: token of alice');
my $alice_b64 = `openssl x509 -in $pki/certs/alice.crt -outform DER | base64 -w0`;
my $root_b64 = `openssl x509 -in $pki/ca.crt -outform DER | base64 -w0`;
like($bound, qr/ cert=:\Q$alice_b64\E: chain=:\Q$root_b64\E: /,
	'bound: Client-Cert and Client-Cert-Chain');
is(status(get('bound-tokens', '/api/orders', 'carol',
	"Authorization: Bearer bound-to-$alice_x5t\r\n")), 401,
	'bound: alice\'s token from carol refused');
is(status(get('bound-tokens', '/api/orders', 'carol',
	"Authorization: Bearer bound-to-$alice_x5t\r\n"
	. "X-Client-Cert-Thumbprint: $alice_x5t\r\n")), 401,
	'bound: thumbprint not forged');
is(status(get('bound-tokens', '/api/orders', 'alice')), 401,
	'bound: no token');
like(get('bound-tokens', '/api/orders', 'alice',
	"Authorization: Bearer bound-to-$alice_x5t\r\n"
	. "Client-Cert: :Zm9yZ2Vk:\r\n"), qr/ cert=:\Q$alice_b64\E: /,
	'bound: Client-Cert not forged');
# ocsp: the responder does not answer; hard refuses, soft passes.

like(get('ocsp', '/', 'alice'), qr/ 403 /, 'ocsp: no answer, refused');
like(get('ocsp', '/status-board/', 'alice'), qr/ 200 .*cn=alice /s,
	'ocsp: no answer, soft passes');

###############################################################################

# $mtls_x5t_s256 of a client's certificate, computed with openssl
sub x5t {
	my ($client) = @_;
	my $t = `openssl x509 -in $pki/certs/$client.crt -outform DER | openssl dgst -sha256 -binary | base64 -w0`;
	$t =~ tr{+/}{-_};
	$t =~ s/=+$//;
	return $t;
}

# scripts/mtls-pki, its output in pki.log.
sub pki {
	open my $stdout, '>&', \*STDOUT or die "Can't dup STDOUT: $!\n";
	open STDOUT, '>>', "$d/pki.log" or die "Can't open pki.log: $!\n";
	my $rc = system("$FindBin::Bin/../scripts/mtls-pki", '--dir', $pki, @_);
	open STDOUT, '>&', $stdout or die "Can't restore STDOUT: $!\n";
	$rc == 0 or die "mtls-pki @_ failed\n";
}

# "nginx -t" leaves an empty nginx.pid, which Test::Nginx's run() would
# take for the one of the nginx it starts: removed.
sub nginx_t {
	my ($conf) = @_;
	my $command = "$Test::Nginx::NGINX -t -p $d/ -c $conf -e $d/nginx-t.log";
	my $out = `$command 2>&1`;
	unlink "$d/nginx.pid";
	return $out;
}

# A request to an example's server, with the chain and key of a client.
sub get {
	my ($example, $uri, $client, $headers, $dir) = @_;
	$dir //= $pki;
	my @cert = defined $client
		? (SSL_cert_file => "$dir/certs/$client.chain.crt",
			SSL_key_file => "$dir/certs/$client.key")
		: ();
	return http("GET $uri HTTP/1.0\r\nHost: localhost\r\n"
		. ($headers // '') . "\r\n",
		SSL => 1, PeerAddr => '127.0.0.1:' . port($examples{$example}),
		@cert);
}

# The status of a request repeated until it is $want, for at most 10 s:
# what a revocation written to a file gives within mtls_reload_interval.
sub eventually {
	my ($want, @request) = @_;
	my $got;
	for (1 .. 100) {
		$got = status(get(@request));
		last if $got eq $want;
		select undef, undef, undef, 0.1;
	}
	return $got;
}

sub status {
	my ($reply) = @_;
	return ($reply // '') =~ m{^HTTP/1\.\d (\d{3}) } ? $1 : 'no reply';
}

sub cert_field {
	my ($client, @options) = @_;
	my $out = `openssl x509 -in $pki/certs/$client.crt -noout @options`;
	$out =~ s/^.*=//s;
	chomp $out;
	return $out;
}

sub read_file {
	my ($path) = @_;
	open my $fh, '<', $path or die "Can't open $path: $!\n";
	local $/;
	return scalar <$fh>;
}

###############################################################################
