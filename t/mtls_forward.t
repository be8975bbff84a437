#!/usr/bin/perl

# Tests for the mtls module: the client's identity passed on to an upstream
# ($mtls_client_cert, $mtls_client_cert_chain as RFC 9440 headers,
# $mtls_x5t_s256), and mtls_clear_request_headers, which keeps a client
# from sending those headers itself.  An upstream on loopback answers with
# the request head it received; the values are decoded by a strict
# structured-field parser and compared with the DER of the certificates.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use Digest::SHA qw/sha256/;
use IO::Socket::INET;
use MIME::Base64 qw/decode_base64 encode_base64/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

eval { require Protocol::HTTP2::Client; };
plan(skip_all => 'Protocol::HTTP2 not installed') if $@;

my $t = Test::Nginx->new()->has(qw/http http_ssl http_v2 proxy auth_request/)
	->has_daemon('openssl')->plan(70);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Reused $ssl_session_reused always;
    add_header X-X5t $mtls_x5t_s256 always;

    proxy_set_header Client-Cert $mtls_client_cert;
    proxy_set_header Client-Cert-Chain $mtls_client_cert_chain;
    proxy_set_header X-Client-CN $mtls_cn;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_trusted_certificate int.crt;
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;

        mtls on;

        location /fwd/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        # a proxy_set_header here drops every one inherited
        location /lower/ {
            proxy_set_header Host upstream;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /off/ {
            mtls off;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /off-lower/ {
            mtls off;
            proxy_set_header Host upstream;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        # the module denies, the address allows
        location /any/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            mtls_allow_cn nobody;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /kept/ {
            mtls off;
            mtls_clear_request_headers off;
            proxy_set_header Host upstream;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /custom/ {
            mtls off;
            mtls_clear_request_headers X-Device-ID;
            proxy_set_header Host upstream;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        # the subrequest of auth_request, and an internal redirect
        location /auth/ {
            auth_request /check;
            auth_request_set $seen $upstream_http_x_seen;
            add_header X-Auth-Seen $seen always;
            proxy_set_header Host upstream;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location = /check {
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Thumbprint $mtls_x5t_s256;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/check;
        }

        location /redirect/ {
            mtls off;
            error_page 418 = @named;
            return 418;
        }

        location @named {
            mtls off;
            proxy_set_header Host upstream;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }

    # TLS 1.3 session tickets
    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_trusted_certificate int.crt;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets on;

        mtls on;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/CN=Forward Root');
$pki->ca('int', ca => 'ca', subj => '/CN=Forward Intermediate');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');
$pki->leaf('alice', ca => 'int', subj => '/O=Example/CN=alice');
$pki->leaf('bob', ca => 'ca', subj => '/CN=bob');
$pki->self_signed('mallory', subj => '/CN=alice');

my %der = map { $_ => cert_der("$d/$_.crt") } qw/ca int alice bob/;

my $upstream = port(8081);
$t->run_daemon(\&upstream_daemon, $upstream);
$t->waitforsocket("127.0.0.1:$upstream") or die "no upstream\n";

$t->run();

###############################################################################

my $port = port(8443);

my @forged = (
	'Client-Cert: :Zm9yZ2Vk:',
	'client-cert: :Zm9yZ2VkLWxvd2VyOg==:',
	'Client-Cert-Chain: :Zm9yZ2Vk:, :Zm9yZ2Vk:',
	'CLIENT-CERT-CHAIN: :Zm9yZ2Vk:',
	'X-Client-CN: admin',
	'X-Client-SPIFFE-ID: spiffe://example.org/admin',
	'X-Client-Serial: 1',
	'X-Device-ID: dev-1',
);

# a verified certificate: the module's values, once each

my $r = request('/fwd/', "$d/alice", @forged);
is(Mtls::outcome($r), '200 allow', 'alice allowed');
my $h = seen($r);
is_deeply(field($h, 'client-cert'), [ $der{alice} ],
	'Client-Cert: the DER of the leaf');
is_deeply(field($h, 'client-cert-chain'), [ $der{int}, $der{ca} ],
	'Client-Cert-Chain: intermediate and root, in TLS order');
is_deeply($h->{'x-client-cn'}, [ 'alice' ], 'X-Client-CN: the module\'s only');
is($h->{'x-client-spiffe-id'}, undef, 'forged X-Client-SPIFFE-ID removed');
is($h->{'x-client-serial'}, undef, 'forged X-Client-Serial removed');
is_deeply($h->{'x-device-id'}, [ 'dev-1' ],
	'X-Device-ID is not a default name');
is(Mtls::header($r, 'X-X5t'), x5t($der{alice}), '$mtls_x5t_s256');

$r = request('/fwd/', "$d/bob");
$h = seen($r);
is_deeply(field($h, 'client-cert'), [ $der{bob} ], 'bob: Client-Cert');
is_deeply(field($h, 'client-cert-chain'), [ $der{ca} ],
	'bob: Client-Cert-Chain is the root');

# a lower proxy_set_header drops the inherited ones: the client's
# headers still do not pass

$r = request('/lower/', "$d/alice", @forged);
is(Mtls::outcome($r), '200 allow', 'lower level: allowed');
$h = seen($r);
is($h->{'client-cert'}, undef, 'lower level: no Client-Cert');
is($h->{'client-cert-chain'}, undef, 'lower level: no Client-Cert-Chain');
is($h->{'x-client-cn'}, undef, 'lower level: no X-Client-CN');
is($h->{'x-client-spiffe-id'}, undef, 'lower level: no X-Client-SPIFFE-ID');

# without a client certificate, and in mtls off locations

$r = request('/off/', undef, @forged);
is(Mtls::outcome($r), '200 off', 'no certificate, off');
$h = seen($r);
is($h->{'client-cert'}, undef, 'no certificate: no Client-Cert');
is($h->{'client-cert-chain'}, undef, 'no certificate: no Client-Cert-Chain');
is($h->{'x-client-cn'}, undef, 'no certificate: no X-Client-CN');

$r = request('/off-lower/', undef, @forged);
$h = seen($r);
ok(defined $h && !grep({ /^(client-cert|x-client-)/ } keys %$h),
	'no certificate, lower level: none of the headers');

$r = request('/off/', "$d/alice", @forged);
is(Mtls::outcome($r), '200 off', 'alice, off');
$h = seen($r);
is($h->{'client-cert'}, undef, 'mtls off: no Client-Cert');
is($h->{'client-cert-chain'}, undef, 'mtls off: no Client-Cert-Chain');
is(Mtls::header($r, 'X-X5t'), '', 'mtls off: no thumbprint');

$r = request('/off/', "$d/mallory", @forged);
is(Mtls::outcome($r), '200 off', 'unverified certificate, off');
is(seen($r)->{'client-cert'}, undef, 'unverified: no Client-Cert');

# denied by the module, let through by "satisfy any"

$r = request('/any/', "$d/alice", @forged);
is(Mtls::outcome($r), '200 deny not_allowed', 'satisfy any: passed, denied');
$h = seen($r);
is($h->{'client-cert'}, undef, 'denied: no Client-Cert');
is($h->{'client-cert-chain'}, undef, 'denied: no Client-Cert-Chain');
is(Mtls::header($r, 'X-X5t'), '', 'denied: no thumbprint');

# the directive: off, and names of one's own (which replace the defaults)

$r = request('/kept/', undef, @forged);
$h = seen($r);
is_deeply($h->{'client-cert'}, [ ':Zm9yZ2Vk:', ':Zm9yZ2VkLWxvd2VyOg==:' ],
	'off: the client\'s Client-Cert passes');

$r = request('/custom/', undef, @forged);
$h = seen($r);
is($h->{'x-device-id'}, undef, 'own names: X-Device-ID removed');
is_deeply($h->{'x-client-cn'}, [ 'admin' ], 'own names replace the defaults');

# an auth_request subrequest, and an internal redirect

$r = request('/auth/', "$d/alice", @forged);
is(Mtls::outcome($r), '200', 'auth_request: allowed');
is(Mtls::header($r, 'X-Auth-Seen'), 'thumbprint=' . x5t($der{alice})
	. ' client-cert=none', 'auth_request: thumbprint, no forged header');
is(seen($r)->{'client-cert'}, undef, 'auth_request: main request cleaned');

$r = request('/redirect/', undef, @forged);
$h = seen($r);
ok(defined $h && !grep({ /^(client-cert|x-client-)/ } keys %$h),
	'error_page to a named location: none of the headers');

# keep-alive: the same values on every request

my $ka = Mtls::KeepAlive->new(port => $port, cert => "$d/alice");
my @values = map { seen($ka->get('/fwd/')) } 1 .. 3;
is_deeply([ map { field($_, 'client-cert-chain') } @values ],
	[ ([ $der{int}, $der{ca} ]) x 3 ], 'keep-alive: the chain every time');
$ka->close();

# session resumption: OpenSSL keeps no verified chain, the module rebuilds
# it; TLS 1.2 with the shared session cache, TLS 1.3 with tickets

for my $case ([ 'TLSv1.2', $port, 'TLSv1_2' ], [ 'TLSv1.3', port(8444), 'TLSv1_3' ]) {
	my ($name, $p, $version) = @$case;
	my $ctx = Mtls::client_ctx("$d/alice", $version);

	my $first = Mtls::resumed_get($p, $ctx, '/fwd/');
	my $again = Mtls::resumed_get($p, $ctx, '/fwd/');

	is(Mtls::header($first, 'X-Reused'), '.', "$name: full handshake");
	is(Mtls::header($again, 'X-Reused'), 'r', "$name: resumed");

	my $h = seen($again);
	is_deeply(field($h, 'client-cert'), [ $der{alice} ],
		"$name resumed: Client-Cert");
	is_deeply(field($h, 'client-cert-chain'), [ $der{int}, $der{ca} ],
		"$name resumed: Client-Cert-Chain");
	is(Mtls::header($again, 'X-X5t'), x5t($der{alice}),
		"$name resumed: thumbprint");
}

# HTTP/2: forged headers on concurrent streams

my @h2 = h2_get([ '/fwd/a', '/lower/b', '/fwd/c' ],
	[ 'client-cert' => ':Zm9yZ2Vk:', 'client-cert-chain' => ':Zm9yZ2Vk:',
		'x-client-cn' => 'admin' ],
	port => $port, cert => "$d/alice");

is($h2[0]{status}, 200, 'h2: allowed');
$h = seen($h2[0]);
is_deeply(field($h, 'client-cert'), [ $der{alice} ], 'h2: Client-Cert');
is_deeply(field($h, 'client-cert-chain'), [ $der{int}, $der{ca} ],
	'h2: Client-Cert-Chain');
is_deeply($h->{'x-client-cn'}, [ 'alice' ], 'h2: X-Client-CN');
$h = seen($h2[1]);
ok(defined $h && !grep({ /^(client-cert|x-client-)/ } keys %$h),
	'h2, lower level: none of the headers');
is_deeply(field(seen($h2[2]), 'client-cert'), [ $der{alice} ],
	'h2: another stream');

# configuration errors

for my $case (
	[ 'X-Forwarded-For', 'is a header nginx itself processes' ],
	[ 'X-*', 'matches "X-Forwarded-For", a header nginx itself processes' ],
	[ '*', '"*" may only end a name that has a prefix' ],
	[ 'X-*-ID', '"*" may only end a name that has a prefix' ],
	[ '"Client Cert"', 'not a header name' ],
	[ 'Client-Cert off', '"off" must be the only value', 'off' ],
) {
	my ($args, $why, $value) = @$case;
	$value //= ($args =~ s/"//gr);
	my $line = "mtls_clear_request_headers $args;";
	my $out = nginx_t($t, "%%TEST_GLOBALS%%\nevents {}\nhttp {\n"
		. "    server {\n        location / {\n            $line\n"
		. "        }\n    }\n}\n", 'clear.conf');
	my $at = "$d/clear.conf:" . conf_line($t, 'clear.conf', $line);
	like($out, qr/\[emerg\] "mtls_clear_request_headers" directive has invalid value "\Q$value\E": \Q$why\E in \Q$at\E$/m,
		"refused: $args");
}

like(nginx_t($t, "%%TEST_GLOBALS%%\nevents {}\nhttp {\n"
	. "    mtls_clear_request_headers Client-Cert;\n"
	. "    mtls_clear_request_headers X-Client-*;\n}\n", 'dup.conf'),
	qr/\[emerg\] "mtls_clear_request_headers" directive is duplicate/,
	'refused: twice at one level');

# the strict parser refuses what is not a List of Byte Sequences

for my $bad (':Zm9v', 'Zm9v:', ':Zm9v:,', ':Zm9v: :YQ==:', ':Zm9v:;a=1',
	':Zm9v=:', ':Zm 9v:', ':YR==:', '"Zm9v"')
{
	ok(!defined eval { sf_list($bad) }, "parser refuses \"$bad\"");
}

###############################################################################

# one HTTP/1.1 request with extra header lines on a new TLS connection

sub request {
	my ($uri, $cert, @headers) = @_;

	my $s = Mtls::connect_tls(port => $port, cert => $cert) or return undef;
	$s->print(join(Mtls::CRLF(), "GET $uri HTTP/1.1", 'Host: localhost',
		'Connection: close', @headers) . Mtls::CRLF() x 2);

	my $buf = '';
	while ($s->sysread(my $chunk, 16384)) {
		$buf .= $chunk;
	}
	$s->close();
	return $buf;
}

# HTTP/2 requests with extra headers on concurrent streams of one connection

sub h2_get {
	my ($uris, $headers, %o) = @_;

	my $h2 = Mtls::H2->new(%o) or return ();
	my @results;
	my $pending = @$uris;

	for my $i (0 .. $#$uris) {
		$h2->{client}->request(
			':scheme' => 'https',
			':authority' => "localhost:$o{port}",
			':path' => $uris->[$i],
			':method' => 'GET',
			headers => $headers,
			on_done => sub {
				my ($hd, $data) = @_;
				my %st = @{$hd // []};
				$results[$i] = { status => $st{':status'}, body => $data };
				$pending--;
			},
		);
	}

	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm(10);
		while (1) {
			while (my $frame = $h2->{client}->next_frame) {
				$h2->{s}->syswrite($frame) or die "write failed\n";
			}
			last if $pending <= 0;
			my $n = $h2->{s}->sysread(my $chunk, 16384) or die "closed\n";
			$h2->{client}->feed($chunk);
		}
		alarm(0);
	};
	alarm(0);
	warn "# h2: $@" if $@;

	$h2->close();
	return @results;
}

# the request head the upstream saw: { lc name => [ values in order ] }

sub seen {
	my ($r) = @_;
	return undef unless defined $r;

	my $body = ref $r ? $r->{body} : ($r =~ /\x0d\x0a\x0d\x0a(.*)\z/s)[0];
	return undef unless defined $body && $body =~ /^GET /;

	my %h;
	for my $line (split /\x0d\x0a/, $body) {
		next unless $line =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*\z/;
		push @{$h{lc $1}}, $2;
	}
	return \%h;
}

# a header field the upstream saw, which must be there exactly once, as a
# List of Byte Sequences: the decoded members

sub field {
	my ($h, $name) = @_;
	my $v = $h->{$name} // return "no $name";
	return "$name " . scalar(@$v) . " times" if @$v != 1;
	my $list = eval { sf_list($v->[0]) };
	return "$name: $@" unless $list;
	return $list;
}

# A strict parser for an RFC 8941 List whose members are Byte Sequences
# without parameters: dies on anything else, and on base64 that does not
# encode back to itself (no stray padding, no bits left over).

sub sf_list {
	my ($input) = @_;

	my @members;
	my $s = $input =~ s/^ +//r;

	die "empty\n" unless length $s;

	while (1) {
		$s =~ s/^:([A-Za-z0-9+\/=]*):// or die "not a byte sequence\n";
		my $b64 = $1;
		die "bad base64 length\n" if length($b64) % 4;
		die "bad padding\n" unless $b64 =~ /^[A-Za-z0-9+\/]*={0,2}\z/;
		my $bytes = decode_base64($b64);
		die "not canonical base64\n" if encode_base64($bytes, '') ne $b64;
		push @members, $bytes;

		$s =~ s/^[ \t]*//;
		last if $s eq '';
		$s =~ s/^,[ \t]*// or die "no comma\n";
		die "trailing comma\n" if $s eq '';
	}

	return \@members;
}

sub x5t {
	my ($der) = @_;
	my $t = encode_base64(sha256($der), '');
	$t =~ tr{+/}{-_};
	$t =~ s/=+$//;
	return $t;
}

# answers every request with the request head it received as the body;
# /check (auth_request) answers 200 with what it saw in X-Seen

sub upstream_daemon {
	my ($port) = @_;

	my $server = IO::Socket::INET->new(
		Proto => 'tcp',
		LocalAddr => "127.0.0.1:$port",
		Listen => 16,
		Reuse => 1,
	) or die "upstream: $!\n";

	while (my $c = $server->accept()) {
		my $head = '';
		while (<$c>) {
			$head .= $_;
			last if /^\x0d?\x0a?$/;
		}

		my ($uri) = $head =~ m!^GET (\S+)!;
		my $extra = '';

		if (defined $uri && $uri eq '/check') {
			my ($tp) = $head =~ /^X-Thumbprint: (.*?)\x0d$/mi;
			my $cc = $head =~ /^Client-Cert:/mi ? 'present' : 'none';
			$extra = 'X-Seen: thumbprint=' . ($tp // 'none')
				. " client-cert=$cc\x0d\x0a";
		}

		print $c "HTTP/1.1 200 OK\x0d\x0a$extra"
			. 'Content-Length: ' . length($head) . "\x0d\x0a"
			. "Connection: close\x0d\x0a\x0d\x0a$head";
		close $c;
	}
}

###############################################################################
