#!/usr/bin/perl

# Tests for scripts/demo, the README's first command: every client it shows
# gets the answer the README describes, the client revoked while holding a
# connection is refused on that same connection, and it leaves nothing
# running behind it.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;

use IO::Socket::INET;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

# The demo runs nginx itself: no Test::Nginx instance, whose checks at the
# end would look for an error log of its own (only port() is used)

for my $program (qw/openssl curl/) {
	plan(skip_all => "$program not found")
		if system("command -v $program >/dev/null 2>&1") != 0;
}

plan(tests => 12);

###############################################################################

# Ports held by this test, so that parallel tests leave them alone.
$ENV{MTLS_DEMO_PORT} = port(8443);
$ENV{MTLS_DEMO_UPSTREAM_PORT} = port(8081);

my $out = `"$FindBin::Bin/../scripts/demo" 2>&1`;
my $rc = $? >> 8;
$out =~ s/\e\[[\d;]*m//g;

is($rc, 0, 'demo exits with 0') or diag($out);

like($out, qr/alice \(allowed CN\)\s+-> 200  X-Mtls: allow .*hello alice/,
	'alice allowed, the upstream sees her CN');
like($out, qr/bob \(valid, CN not allowed\)\s+-> 403  X-Mtls: deny not_allowed/,
	'bob not allowed');
like($out, qr/mallory \(CN alice, other CA\)\s+-> 403  X-Mtls: deny unverified/,
	'wrong CA');
like($out, qr/no certificate\s+-> 403  X-Mtls: deny no_cert/,
	'no certificate');
like($out, qr/no certificate, \/health\s+-> 200/, 'open location');

my @carol = $out =~ /carol, \/admin\/\s+-> (\d+)  X-Mtls: (.*?)\s+\(connection (\d+), request (\d+)\)/g;
is("@carol[0, 1, 4, 5]", '200 allow 403 deny revoked',
	'carol allowed, then refused after her revocation');
ok(@carol == 8 && $carol[2] eq $carol[6] && $carol[7] == $carol[3] + 1,
	'on the same connection');

like($out, qr/^  access forbidden by mtls: revoked, .*by ".*deny-list\.txt"$/m,
	'the log names the deny list');

my ($dir) = $out =~ m{(/tmp/mtls-demo\.\w+)/};
ok(defined $dir && !-e $dir, 'its directory removed');
select undef, undef, undef, 0.5;
is(`pgrep -f 'mtls-demo[.]' 2>/dev/null`, '', 'no nginx left');
ok(!IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{MTLS_DEMO_PORT}"),
	'its port closed');

###############################################################################
