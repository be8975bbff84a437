#!/usr/bin/perl

# Tests for the mtls module: when the client certificates seen expire, in
# mtls_status (JSON and Prometheus): connections by remaining validity,
# counted once per TLS connection, and the soonest-expiring distinct
# certificates, merged over two workers; a reload starts afresh.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use POSIX qw/strftime/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

eval { require Protocol::HTTP2::Client; };
plan(skip_all => 'Protocol::HTTP2 not installed') if $@;

my $t = Test::Nginx->new()->has(qw/http http_ssl http_v2/)
	->has_daemon('openssl')->plan(38);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional;

        location / {
            mtls on;
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        server_name  localhost;

        location /status {
            mtls_status;
        }
    }
}

EOF

$t->write_file('ok', 'ok');

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/CN=Expiry CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

my $now = time();
my %in = (hour => 3600, days3 => 3 * 86400, days20 => 20 * 86400,
	year => 365 * 86400);

for my $name (keys %in) {
	$pki->leaf($name, ca => 'ca', subj => "/O=Example/CN=$name",
		enddate => asn1_time($now + $in{$name}));
}

$t->run();

###############################################################################

my $port = port(8443);
my $status_port = port(8080);

my $s = Mtls::mtls_status($status_port);
is($s->{client_certs}{connections}, 0, 'nothing seen yet');
is_deeply($s->{client_certs}{soonest}, [], 'no certificates');
is($s->{client_certs}{earliest_expiry}, undef, 'no earliest expiry');

# hour: three connections; days3: one keep-alive connection, five
# requests; days20: one HTTP/2 connection, four streams; year: once, in
# an mtls off location; no certificate: not counted

is(Mtls::outcome(https_get($port, '/', "$d/hour")), '200', 'hour') for 1 .. 3;

my $ka = Mtls::KeepAlive->new(port => $port, cert => "$d/days3");
my @codes = map { ($ka->get('/') // {})->{status} // 'none' } 1 .. 5;
is("@codes", '200 200 200 200 200', 'days3: keep-alive');
$ka->close();

my $h2 = Mtls::H2->new(port => $port, cert => "$d/days20");
@codes = map { $_->{status} // 'none' } $h2->get_many(('/') x 4);
is("@codes", '200 200 200 200', 'days20: HTTP/2 streams');
$h2->close();

like(https_get($port, '/off', "$d/year"), qr/^HTTP\/1.1 200/, 'year, off');
like(https_get($port, '/off'), qr/^HTTP\/1.1 200/, 'no certificate');

$s = Mtls::mtls_status($status_port)->{client_certs};

is($s->{connections}, 6, 'six connections with a certificate');
is_deeply($s->{expiring}, { within_1d => 3, within_7d => 1, within_30d => 1,
	later => 1 }, 'by remaining validity, once per connection');

my @soonest = @{$s->{soonest}};
is(scalar @soonest, 4, 'four distinct certificates');
is_deeply([ map { $_->{subject} } @soonest ],
	[ map { "CN=$_,O=Example" } qw/hour days3 days20 year/ ],
	'soonest first, each once');

for my $e (@soonest) {
	my ($name) = $e->{subject} =~ /^CN=(\w+)/;
	is($e->{serial}, serial_hex("$d/$name.crt"), "$name: serial");
	is($e->{not_after}, rfc3339(not_after_epoch("$d/$name.crt")),
		"$name: notAfter");
	my $seen = epoch($e->{last_seen});
	ok(defined $seen && $seen >= $now - 5 && $seen <= time() + 5,
		"$name: last seen");
}

is($s->{earliest_expiry}, rfc3339(not_after_epoch("$d/hour.crt")),
	'earliest expiry');

# Prometheus

my $p = Mtls::mtls_status($status_port, raw => 1,
	uri => '/status?format=prometheus');
my %m = metrics($p);

my $hist = 'mtls_client_cert_validity_remaining_seconds';
is($m{"${hist}_bucket{le=\"86400\"}"}, 3, 'histogram: 1 day');
is($m{"${hist}_bucket{le=\"604800\"}"}, 4, 'histogram: 7 days');
is($m{"${hist}_bucket{le=\"2592000\"}"}, 5, 'histogram: 30 days');
is($m{"${hist}_bucket{le=\"+Inf\"}"}, 6, 'histogram: all');
is($m{"${hist}_count"}, 6, 'histogram: count');
my $sum = 3 * 3600 + 3 * 86400 + 20 * 86400 + 365 * 86400;
ok(abs($m{"${hist}_sum"} - $sum) < 6 * 60, 'histogram: sum');
like($p, qr/^# TYPE $hist histogram$/m, 'histogram: type');

is($m{'mtls_client_cert_earliest_expiry_timestamp_seconds'},
	not_after_epoch("$d/hour.crt"), 'earliest expiry gauge');
is($m{'mtls_client_cert_not_after_timestamp_seconds'
	. '{subject="CN=days3,O=Example",serial="' . serial_hex("$d/days3.crt")
	. '"}'}, not_after_epoch("$d/days3.crt"), 'notAfter gauge');

# a reload starts afresh

Mtls::reload($t);
Mtls::wait_for(sub { Mtls::workers($t) == 2 });
is(Mtls::mtls_status($status_port)->{client_certs}{connections}, 0,
	'reload: nothing seen');
https_get($port, '/', "$d/days20");
$s = Mtls::mtls_status($status_port)->{client_certs};
is_deeply([ map { $_->{subject} } @{$s->{soonest}} ],
	[ 'CN=days20,O=Example' ], 'reload: what is seen since');

###############################################################################

sub rfc3339 {
	return strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($_[0]));
}

sub epoch {
	my ($t) = @_;
	return undef unless defined $t
		&& $t =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;
	require Time::Local;
	return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1);
}

# "name{labels} value" lines of the Prometheus text

sub metrics {
	my ($r) = @_;
	my ($body) = ($r // '') =~ /\x0d\x0a\x0d\x0a(.*)\z/s;
	my %m;
	for (split /\n/, $body // '') {
		next if /^#/;
		/^(\S+) (\S+)$/ and $m{$1} = $2;
	}
	return %m;
}

###############################################################################
