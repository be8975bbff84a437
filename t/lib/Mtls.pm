package Mtls;

# Test helpers for ngx_http_mtls_module: a throw-away PKI made with the
# openssl command, certificate surgery ("patch and re-sign"), "nginx -t" on
# a separate configuration, and TLS clients (one-shot HTTP/1.0, HTTP/1.1
# keep-alive, HTTP/2) that present a client certificate.

use warnings;
use strict;

use Exporter qw/import/;
use Digest::SHA qw/sha256_hex/;
use MIME::Base64 qw/decode_base64 encode_base64/;
use POSIX qw/strftime/;
use Time::Local qw/timegm/;

our @EXPORT = qw/
	der_fingerprint_sha256 serial_hex not_after_epoch asn1_time
	cert_der nginx_t conf_line https_get outcome header raw_headers
/;

###############################################################################

# run a command, die with its output unless it exits with 0

sub run_cmd {
	my (@cmd) = @_;

	my $pid = open(my $fh, '-|');
	die "fork: $!\n" unless defined $pid;

	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT or die "dup: $!\n";
		exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
	}

	local $/;
	my $out = <$fh> // '';
	close $fh;

	die "command failed (exit " . ($? >> 8) . "): @cmd\n$out" if $?;
	return $out;
}

sub slurp {
	my ($file) = @_;
	open my $fh, '<', $file or die "can't open $file: $!\n";
	binmode $fh;
	local $/;
	my $content = <$fh>;
	close $fh;
	return $content;
}

sub spew {
	my ($file, $content) = @_;
	open my $fh, '>', $file or die "can't create $file: $!\n";
	binmode $fh;
	print $fh $content;
	close $fh or die "can't write $file: $!\n";
}

###############################################################################

# certificate inspection

# DER of the first certificate in a PEM file

sub cert_der {
	my ($crt) = @_;

	my $pem = slurp($crt);
	$pem =~ /-----BEGIN CERTIFICATE-----\s*(.*?)-----END CERTIFICATE-----/s
		or die "no certificate in $crt\n";

	return decode_base64($1);
}

# SHA-256 of the DER, lower-case hex without colons

sub der_fingerprint_sha256 {
	my ($crt) = @_;
	return sha256_hex(cert_der($crt));
}

# serial number as "openssl x509 -serial" (and nginx's $ssl_client_serial)
# print it: upper-case hex

sub serial_hex {
	my ($crt) = @_;
	my $out = run_cmd('openssl', 'x509', '-in', $crt, '-noout', '-serial');
	$out =~ /^serial=([0-9A-F]+)\s*$/m or die "no serial in: $out\n";
	return $1;
}

# notAfter as seconds since the epoch

my %months = (Jan => 0, Feb => 1, Mar => 2, Apr => 3, May => 4, Jun => 5,
	Jul => 6, Aug => 7, Sep => 8, Oct => 9, Nov => 10, Dec => 11);

sub not_after_epoch {
	my ($crt) = @_;
	my $out = run_cmd('openssl', 'x509', '-in', $crt, '-noout', '-enddate');

	# notAfter=Jan 31 12:00:00 2030 GMT

	$out =~ /^notAfter=(\w{3})\s+(\d+) (\d\d):(\d\d):(\d\d) (\d{4}) GMT/m
		or die "no notAfter in: $out\n";

	return timegm($5, $4, $3, $2, $months{$1}, $6);
}

# time in the form "openssl ca -startdate/-enddate" takes: YYYYMMDDHHMMSSZ

sub asn1_time {
	my ($epoch) = @_;
	return strftime('%Y%m%d%H%M%SZ', gmtime($epoch));
}

###############################################################################

# "nginx -t" on a configuration written to a file of its own in the test
# directory; returns nginx's output (stdout and stderr).  "nginx -t" creates
# the pid file of the configuration, empty: one it made is removed, as
# upstream's $t->run() would take it for nginx's and not wait for nginx

sub nginx_t {
	my ($t, $conf, $name) = @_;

	$name //= 'check.conf';
	$t->write_file_expand($name, $conf);

	my $d = $t->testdir();
	my $pidfile = -e "$d/nginx.pid";

	my $pid = open(my $fh, '-|');
	die "fork: $!\n" unless defined $pid;

	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT or die "dup: $!\n";
		exec($Test::Nginx::NGINX, '-t', '-p', "$d/", '-c', "$d/$name",
			'-e', "$d/t-error.log")
			or die "exec $Test::Nginx::NGINX: $!\n";
	}

	local $/;
	my $out = <$fh> // '';
	close $fh;

	unlink "$d/nginx.pid" unless $pidfile;
	return $out;
}

# the line number (1-based) of the first line of the expanded configuration
# file that contains the given text

sub conf_line {
	my ($t, $name, $text) = @_;

	my @lines = split /\n/, $t->read_file($name), -1;

	for my $n (0 .. $#lines) {
		return $n + 1 if index($lines[$n], $text) >= 0;
	}

	die "\"$text\" not found in $name\n";
}

###############################################################################

# TLS clients

# IO::Socket::SSL options for a client certificate: "cert" is a path prefix,
# "$prefix.crt" and "$prefix.key" (or "$prefix.chain.crt" if present, with
# the intermediate certificates the leaf needs); or [ crt file, key file ]

sub cert_opts {
	my ($cert) = @_;

	return () unless defined $cert;
	return (SSL_cert_file => $cert->[0], SSL_key_file => $cert->[1])
		if ref $cert eq 'ARRAY';

	my $crt = -f "$cert.chain.crt" ? "$cert.chain.crt" : "$cert.crt";

	return (SSL_cert_file => $crt, SSL_key_file => "$cert.key");
}

sub connect_tls {
	my (%o) = @_;

	require IO::Socket::SSL;

	my $s = IO::Socket::SSL->new(
		PeerAddr => '127.0.0.1:' . $o{port},
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		SSL_hostname => $o{host} // 'localhost',
		Timeout => 8,
		cert_opts($o{cert}),
		$o{alpn} ? (SSL_alpn_protocols => $o{alpn}) : (),
	);

	unless ($s) {
		no warnings "once";
		warn "# tls connect failed: $! $IO::Socket::SSL::SSL_ERROR\n";
		return undef;
	}

	return $s;
}

# one HTTP/1.0 request on a new TLS connection, returns the raw response
# (undef if the connection or handshake failed)
#
#   https_get($port, '/path', "$d/alice")     # client certificate
#   https_get($port, '/path')                 # none

sub https_get {
	my ($port, $uri, $cert, %extra) = @_;

	my $r;

	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		local $SIG{PIPE} = sub { die "sigpipe\n" };
		alarm(10);

		my $s = connect_tls(port => $port, cert => $cert, %extra)
			or die "no connection\n";

		my $host = $extra{host} // 'localhost';
		$s->print("GET $uri HTTP/1.0" . CRLF() . "Host: $host" . CRLF()
			. CRLF());

		my $buf = '';
		while (1) {
			my $n = $s->sysread(my $chunk, 16384);
			last unless $n;
			$buf .= $chunk;
		}

		$s->close();
		alarm(0);
		$r = $buf;
	};
	alarm(0);

	if ($@) {
		warn "# https_get $uri: $@";
		return undef;
	}

	return $r;
}

sub CRLF { "\x0d\x0a" }

# "STATUS DECISION[ REASON]" from the response, e.g. "200 allow",
# "403 deny not_allowed"; "no response" if there was none

sub outcome {
	my ($r) = @_;

	return 'no response' unless defined $r && (ref $r || length $r);

	my $status;

	if (ref $r eq 'HASH') {
		$status = $r->{status} // 'no-status';
	} else {
		($status) = $r =~ m!^HTTP/[\d.]+ (\d{3})!;
		$status //= 'bad-status-line';
	}

	my @parts = ($status);
	for my $name ('X-Decision', 'X-Reason') {
		my $v = header($r, $name);
		push @parts, $v if defined $v && length $v;
	}

	return join ' ', @parts;
}

# the raw header block of a response (status line included)

sub raw_headers {
	my ($r) = @_;
	return undef unless defined $r;
	my ($h) = $r =~ /\A(.*?)\x0d\x0a\x0d\x0a/s;
	return $h;
}

# the value of a response header: undef if there was no response, '' if the
# header is absent (nginx's add_header omits empty values)

sub header {
	my ($r, $name) = @_;

	return undef unless defined $r;

	if (ref $r eq 'HASH') {
		my $v = $r->{headers}{lc $name};
		return $v // '';
	}

	my $h = raw_headers($r);
	return undef unless defined $h;

	for my $line (split /\x0d\x0a/, $h) {
		return $1 if $line =~ /^\Q$name\E:[ \t]*(.*?)[ \t]*\z/i;
	}

	return '';
}

###############################################################################

package Mtls::PKI;

# A small PKI in a directory.  Every certificate "name" is "$dir/name.crt"
# with its key "$dir/name.key".
#
#   my $pki = Mtls::PKI->new($dir);
#   $pki->ca('ca', subj => '/CN=Test CA');                   # root CA
#   $pki->ca('int', ca => 'ca', subj => '/CN=Int CA');       # intermediate
#   $pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
#       san => 'DNS:a.example.com,URI:spiffe://example.org/ns/prod/sa/web',
#       serial => '0x1002', ca_flag => 0, days => 30);
#   $pki->leaf('old', ca => 'ca', subj => '/CN=old',
#       startdate => '20200101000000Z', enddate => '20200201000000Z');
#   $pki->self_signed('self', subj => '/CN=alice');
#   $pki->patch('alice0', from => 'alice', ca => 'ca',
#       replace => [ 'aliceXevil' => "alice\0evil" ]);
#
# Leaf options: ca (issuer name; none means self-signed), subj, san
# (subjectAltName value), serial (0x-prefixed hex or decimal), ca_flag
# (basicConstraints CA:TRUE/FALSE; undef: CA:FALSE; 'none': no extension),
# eku (extendedKeyUsage, default clientAuth; '' for none), days, startdate
# and enddate (YYYYMMDDHHMMSSZ, via "openssl ca"), string_mask (req's
# string_mask for the subject: utf8only (default), default, pkix, nombstr),
# key (use the key of another certificate), ocsp (the responder URL in
# authorityInfoAccess), cdp (a URL, or a list of URLs, as CRL distribution
# points).
# If the issuer is itself issued by a CA of this PKI, "$dir/name.chain.crt"
# holds the leaf followed by the intermediate certificates.

sub new {
	my ($class, $dir) = @_;

	mkdir $dir unless -d $dir;

	return bless {
		dir => $dir,
		serial => 0x1000,
		issuer => {},
	}, $class;
}

sub dir { $_[0]{dir} }

sub _next_serial {
	my ($self) = @_;
	return sprintf('0x%X', ++$self->{serial});
}

sub _key {
	my ($self, $name) = @_;
	Mtls::run_cmd('openssl', 'genpkey', '-algorithm', 'EC',
		'-pkeyopt', 'ec_paramgen_curve:P-256',
		'-out', "$self->{dir}/$name.key");
}

sub _ext_section {
	my ($self, %o) = @_;

	my $ca = $o{ca_flag};
	my @ext;

	if (!defined $ca || $ca ne 'none') {
		push @ext, 'basicConstraints = critical,CA:'
			. ($ca ? 'TRUE' : 'FALSE');
	}

	if ($o{is_ca}) {
		push @ext, 'keyUsage = critical,keyCertSign,cRLSign';
	} else {
		push @ext, 'keyUsage = critical,digitalSignature'
			. ($ca && $ca ne 'none' ? ',keyCertSign' : '');
		my $eku = $o{eku} // 'clientAuth';
		push @ext, "extendedKeyUsage = $eku" if length $eku;
	}

	push @ext, "subjectAltName = $o{san}" if defined $o{san};
	push @ext, "authorityInfoAccess = OCSP;URI:$o{ocsp}" if defined $o{ocsp};
	push @ext, 'crlDistributionPoints = '
		. join(',', map { "URI:$_" } ref $o{cdp} ? @{$o{cdp}} : $o{cdp})
		if defined $o{cdp};
	push @ext, 'subjectKeyIdentifier = hash';
	push @ext, 'authorityKeyIdentifier = keyid' unless $o{self_signed};

	return join("\n", '[v3]', @ext) . "\n";
}

sub _req_conf {
	my ($self, $name, %o) = @_;

	my $mask = $o{string_mask} // 'utf8only';
	my $file = "$self->{dir}/$name.req.cnf";

	Mtls::spew($file, <<"EOF" . $self->_ext_section(%o));
[req]
distinguished_name = dn
string_mask = $mask
prompt = no

[dn]
CN = unused

EOF

	return $file;
}

# root CA (self-signed) or, with "ca => PARENT", an intermediate CA

sub ca {
	my ($self, $name, %o) = @_;

	return $self->leaf($name, %o, ca_flag => 1, is_ca => 1, eku => '',
		days => $o{days} // 3650);
}

sub self_signed {
	my ($self, $name, %o) = @_;
	delete $o{ca};
	return $self->leaf($name, %o);
}

sub leaf {
	my ($self, $name, %o) = @_;

	my $d = $self->{dir};
	my $subj = $o{subj} // "/CN=$name";
	my $serial = $o{serial} // $self->_next_serial();
	my $days = $o{days} // 30;
	my $issuer = $o{ca};

	if (defined $o{key}) {
		Mtls::spew("$d/$name.key", Mtls::slurp("$d/$o{key}.key"))
			unless $o{key} eq $name;
	} else {
		$self->_key($name);
	}

	my $cnf = $self->_req_conf($name, %o, self_signed => !defined $issuer);

	if (!defined $issuer) {
		die "startdate/enddate need an issuer\n"
			if defined $o{startdate} || defined $o{enddate};

		Mtls::run_cmd('openssl', 'req', '-x509', '-new',
			'-config', $cnf, '-extensions', 'v3',
			'-key', "$d/$name.key", '-subj', $subj, '-multivalue-rdn',
			'-set_serial', $serial, '-days', $days, '-sha256',
			'-out', "$d/$name.crt");

		$self->{issuer}{$name} = undef;
		return "$d/$name.crt";
	}

	die "unknown issuer $issuer\n" unless exists $self->{issuer}{$issuer};

	Mtls::run_cmd('openssl', 'req', '-new', '-config', $cnf,
		'-key', "$d/$name.key", '-subj', $subj, '-multivalue-rdn',
		'-out', "$d/$name.csr");

	if (defined $o{startdate} || defined $o{enddate}) {
		$self->_sign_ca($name, $issuer, $cnf, $serial, %o);

	} else {
		Mtls::run_cmd('openssl', 'x509', '-req', '-in', "$d/$name.csr",
			'-CA', "$d/$issuer.crt", '-CAkey', "$d/$issuer.key",
			'-set_serial', $serial, '-days', $days, '-sha256',
			'-extfile', $cnf, '-extensions', 'v3',
			'-out', "$d/$name.crt");
	}

	$self->{issuer}{$name} = $issuer;
	$self->_chain($name);

	return "$d/$name.crt";
}

# "openssl ca" for chosen validity dates

sub _sign_ca {
	my ($self, $name, $issuer, $ext, $serial, %o) = @_;

	my $d = $self->{dir};
	my $w = "$d/$name.ca";

	mkdir $w unless -d $w;
	Mtls::spew("$w/index.txt", '');

	my $hex = $serial =~ /^0x(.*)$/i ? $1 : sprintf('%X', $serial);
	$hex = '0' . $hex if length($hex) % 2;
	Mtls::spew("$w/serial", "$hex\n");

	Mtls::spew("$w/ca.cnf", <<"EOF");
[ca]
default_ca = myca

[myca]
database = $w/index.txt
new_certs_dir = $w
serial = $w/serial
default_md = sha256
default_days = 30
policy = anything
unique_subject = no
email_in_dn = yes
copy_extensions = none

[anything]
commonName = optional
EOF

	my $start = $o{startdate} // Mtls::asn1_time(time() - 86400);
	my $end = $o{enddate} // Mtls::asn1_time(time() + 30 * 86400);

	Mtls::run_cmd('openssl', 'ca', '-batch', '-notext', '-preserveDN',
		'-multivalue-rdn', '-config', "$w/ca.cnf",
		'-cert', "$d/$issuer.crt", '-keyfile', "$d/$issuer.key",
		'-in', "$d/$name.csr", '-out', "$d/$name.crt",
		'-startdate', $start, '-enddate', $end,
		'-extfile', $ext, '-extensions', 'v3');
}

# leaf + intermediates (not the root) in "name.chain.crt"

sub _chain {
	my ($self, $name) = @_;

	my $d = $self->{dir};
	my $issuer = $self->{issuer}{$name};

	return unless defined $issuer && defined $self->{issuer}{$issuer};

	my $pem = '';
	my $n = $name;

	while (defined $self->{issuer}{$n}) {
		$pem .= Mtls::slurp("$d/$n.crt");
		$n = $self->{issuer}{$n};
	}

	Mtls::spew("$d/$name.chain.crt", $pem);
}

# verify "name" against the CA file of "ca" ("openssl verify"), returns
# openssl's output; dies if it does not verify

sub verify {
	my ($self, $name, $ca) = @_;

	my $d = $self->{dir};
	my @untrusted;

	if (-f "$d/$name.chain.crt") {
		@untrusted = ('-untrusted', "$d/$name.chain.crt");
	}

	return Mtls::run_cmd('openssl', 'verify', '-CAfile', "$d/$ca.crt",
		@untrusted, "$d/$name.crt");
}

###############################################################################

# patch and re-sign: copy certificate "from" to "name", replacing byte
# strings inside its TBSCertificate with others of the same length, and sign
# the result again with the key of "ca" (which must be the issuer of "from"),
# so that it still verifies; the key is copied too
#
#   $pki->patch('evil', from => 'alice', ca => 'ca',
#       replace => [ 'aliceXevil' => "alice\0evil" ]);

sub patch {
	my ($self, $name, %o) = @_;

	my $d = $self->{dir};
	my $ca = $o{ca} // $self->{issuer}{$o{from}}
		// die "patch: no issuer\n";

	my $der = Mtls::cert_der("$d/$o{from}.crt");

	# Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
	#     signatureValue BIT STRING }

	my ($tag, $body) = der_read(\$der, 0);
	die "patch: not a SEQUENCE\n" unless $tag == 0x30;

	my $pos = 0;
	my ($ttag, $tbs_content, $tbs_len) = der_read(\$body, $pos);
	my $tbs = substr($body, $pos, $tbs_len);
	$pos += $tbs_len;

	my ($atag, $alg_content, $alg_len) = der_read(\$body, $pos);
	my $alg = substr($body, $pos, $alg_len);

	my @replace = @{$o{replace}};

	while (my ($from, $to) = splice @replace, 0, 2) {
		die "patch: \"$from\" and its replacement differ in length\n"
			unless length $from == length $to;

		my $n = () = $tbs =~ /\Q$from\E/g;
		die "patch: \"$from\" found $n times in the TBSCertificate\n"
			unless $n == 1;

		$tbs =~ s/\Q$from\E/$to/;
	}

	Mtls::spew("$d/$name.tbs", $tbs);
	Mtls::run_cmd('openssl', 'dgst', '-sha256', '-sign', "$d/$ca.key",
		'-out', "$d/$name.sig", "$d/$name.tbs");
	my $sig = Mtls::slurp("$d/$name.sig");

	my $cert = der_tlv(0x30, $tbs . $alg . der_tlv(0x03, "\0" . $sig));

	Mtls::spew("$d/$name.crt", "-----BEGIN CERTIFICATE-----\n"
		. MIME::Base64::encode_base64($cert) . "-----END CERTIFICATE-----\n");
	Mtls::spew("$d/$name.key", Mtls::slurp("$d/$o{from}.key"));

	$self->{issuer}{$name} = $ca;
	$self->_chain($name);

	$self->verify($name, $self->_root($ca));

	return "$d/$name.crt";
}

sub _root {
	my ($self, $name) = @_;
	$name = $self->{issuer}{$name} while defined $self->{issuer}{$name};
	return $name;
}

# DER: read the TLV at offset; returns (tag, content, total length)

sub der_read {
	my ($buf, $off) = @_;

	my $tag = ord(substr($$buf, $off, 1));
	my $len = ord(substr($$buf, $off + 1, 1));
	my $hdr = 2;

	if ($len & 0x80) {
		my $n = $len & 0x7f;
		die "DER: bad length\n" if $n == 0 || $n > 4;
		$len = 0;
		$len = ($len << 8) | ord(substr($$buf, $off + 2 + $_, 1))
			for 0 .. $n - 1;
		$hdr += $n;
	}

	die "DER: truncated\n" if $off + $hdr + $len > length $$buf;

	return ($tag, substr($$buf, $off + $hdr, $len), $hdr + $len);
}

sub der_tlv {
	my ($tag, $content) = @_;

	my $len = length $content;
	my $l;

	if ($len < 0x80) {
		$l = chr($len);
	} else {
		my $bytes = '';
		while ($len) {
			$bytes = chr($len & 0xff) . $bytes;
			$len >>= 8;
		}
		$l = chr(0x80 | length $bytes) . $bytes;
	}

	return chr($tag) . $l . $content;
}

###############################################################################

package Mtls::KeepAlive;

# HTTP/1.1 requests on one persistent TLS connection
#
#   my $ka = Mtls::KeepAlive->new(port => $port, cert => "$d/alice");
#   my $r = $ka->get('/path');   # { status, headers => { lc name => value },
#                                #   body, raw } or undef

sub new {
	my ($class, %o) = @_;

	my $s = Mtls::connect_tls(%o) or return undef;

	return bless { s => $s, buf => '', host => $o{host} // 'localhost' },
		$class;
}

sub get {
	my ($self, $uri) = @_;

	my $r;

	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		local $SIG{PIPE} = sub { die "sigpipe\n" };
		alarm(10);

		my $s = $self->{s} or die "connection closed\n";

		$s->print("GET $uri HTTP/1.1" . Mtls::CRLF()
			. "Host: $self->{host}" . Mtls::CRLF() . Mtls::CRLF())
			or die "write failed\n";

		$r = $self->_read_response();
		alarm(0);
	};
	alarm(0);

	if ($@) {
		warn "# keepalive get $uri: $@";
		return undef;
	}

	return $r;
}

sub _fill {
	my ($self) = @_;
	my $n = $self->{s}->sysread(my $chunk, 16384);
	die "connection closed by server\n" unless $n;
	$self->{buf} .= $chunk;
}

sub _read_response {
	my ($self) = @_;

	$self->_fill() while $self->{buf} !~ /\x0d\x0a\x0d\x0a/;

	$self->{buf} =~ s/\A(.*?)\x0d\x0a\x0d\x0a//s;
	my $head = $1;

	my ($status_line, @lines) = split /\x0d\x0a/, $head;
	my ($status) = $status_line =~ m!^HTTP/1\.[01] (\d{3})!
		or die "bad status line: $status_line\n";

	my %h;
	for (@lines) {
		/^([^:]+):[ \t]*(.*?)[ \t]*$/ or die "bad header line: $_\n";
		$h{lc $1} = exists $h{lc $1} ? "$h{lc $1}, $2" : $2;
	}

	my $body = '';

	if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
		while (1) {
			$self->_fill() while $self->{buf} !~ /\x0d\x0a/;
			$self->{buf} =~ s/\A([0-9a-fA-F]+)[^\x0d]*\x0d\x0a//
				or die "bad chunk\n";
			my $len = hex $1;
			$self->_fill() while length $self->{buf} < $len + 2;
			$body .= substr($self->{buf}, 0, $len);
			substr($self->{buf}, 0, $len + 2) = '';
			if ($len == 0) {
				last;
			}
		}

	} elsif (defined $h{'content-length'}) {
		my $len = $h{'content-length'};
		$self->_fill() while length $self->{buf} < $len;
		$body = substr($self->{buf}, 0, $len);
		substr($self->{buf}, 0, $len) = '';

	} else {
		die "response without length on a keep-alive connection\n";
	}

	if (($h{connection} // '') =~ /close/i) {
		$self->{s}->close();
		undef $self->{s};
	}

	return { status => $status, headers => \%h, body => $body,
		raw => "$head\x0d\x0a\x0d\x0a$body" };
}

sub close {
	my ($self) = @_;
	$self->{s}->close() if $self->{s};
	undef $self->{s};
}

###############################################################################

package Mtls::H2;

# HTTP/2 requests on one TLS connection (ALPN h2), driven synchronously
#
#   my $h2 = Mtls::H2->new(port => $port, cert => "$d/alice");
#       # or SSL_cert_file => ..., SSL_key_file => ...
#   my $r = $h2->get('/path');   # { status, headers => { lc name => value },
#                                #   body } or undef
#   my @r = $h2->get_many('/a', '/b');    # concurrent streams

sub new {
	my ($class, %o) = @_;

	require Protocol::HTTP2::Client;

	$o{cert} = [ $o{SSL_cert_file}, $o{SSL_key_file} ]
		if defined $o{SSL_cert_file};

	my $s = Mtls::connect_tls(%o, alpn => ['h2']) or return undef;

	my $alpn = $s->alpn_selected() // '';
	if ($alpn ne 'h2') {
		warn "# h2: ALPN selected '$alpn'\n";
		return undef;
	}

	my $client = Protocol::HTTP2::Client->new(keepalive => 1);

	return bless {
		s => $s,
		client => $client,
		authority => ($o{host} // 'localhost') . ':' . $o{port},
	}, $class;
}

sub get {
	my ($self, $uri) = @_;
	my @r = $self->get_many($uri);
	return $r[0];
}

sub get_many {
	my ($self, @uris) = @_;

	my @results;
	my $pending = @uris;

	for my $i (0 .. $#uris) {
		$self->{client}->request(
			':scheme' => 'https',
			':authority' => $self->{authority},
			':path' => $uris[$i],
			':method' => 'GET',
			headers => [],
			on_done => sub {
				my ($headers, $data) = @_;
				my %h;
				my @hl = @{$headers // []};
				while (my ($k, $v) = splice @hl, 0, 2) {
					$h{lc $k} = exists $h{lc $k}
						? "$h{lc $k}, $v" : $v;
				}
				$results[$i] = {
					status => $h{':status'},
					headers => \%h,
					body => $data,
				};
				$pending--;
			},
			on_error => sub {
				$results[$i] = { status => 'reset', error => $_[0],
					headers => {}, body => '' };
				$pending--;
			},
		);
	}

	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		local $SIG{PIPE} = sub { die "sigpipe\n" };
		alarm(10);

		my $s = $self->{s};
		my $client = $self->{client};

		while (1) {
			while (my $frame = $client->next_frame) {
				$s->syswrite($frame) or die "write failed\n";
			}

			last if $pending <= 0;
			die "connection shut down\n" if $client->shutdown;

			my $n = $s->sysread(my $chunk, 16384);
			die "connection closed by server\n" unless $n;
			$client->feed($chunk);
		}

		alarm(0);
	};
	alarm(0);

	if ($@) {
		warn "# h2 get @uris: $@";
	}

	return @results;
}

sub close {
	my ($self) = @_;
	return unless $self->{s};
	$self->{client}->close();
	while (my $frame = $self->{client}->next_frame) {
		$self->{s}->syswrite($frame);
	}
	$self->{s}->close();
	undef $self->{s};
}

###############################################################################

# Helpers for the revocation tests (t/revocation_*.t): CRLs made with
# "openssl ca -gencrl", atomic file updates, waiting for the error log, the
# mtls_status page, and the table files in /dev/shm.

package Mtls::PKI;

use Time::HiRes ();

# a CRL of "ca", made with "openssl ca -gencrl" from a CA database written
# for it, in "$dir/$name" (PEM), or DER with "der => 1"; returns its path
#
#   $pki->crl('ca.crl', ca => 'ca', revoke => [ 'bob', 'int' ],
#       number => 5, lastupdate => asn1_time(...), nextupdate => ...);
#
# Options: ca (the issuer, a CA of this PKI), revoke (names of certificates
# of this PKI), revoke_serials (upper-case hex), number (CRL number, decimal;
# none: the CRL has no number), lastupdate and nextupdate (YYYYMMDDHHMMSSZ),
# hours (until nextUpdate, default 24 * 30), der, key (sign with the key of
# another certificate of this PKI, for a bad signature), file (the path,
# default "$dir/$name").

sub crl {
	my ($self, $name, %o) = @_;

	my $d = $self->{dir};
	my $ca = $o{ca} // die "crl: no ca\n";
	my $w = "$d/$name.gencrl";

	mkdir $w unless -d $w;

	my $expiry = POSIX::strftime('%y%m%d%H%M%SZ',
		gmtime(time() + 365 * 86400));
	my $revoked = POSIX::strftime('%y%m%d%H%M%SZ', gmtime(time() - 3600));

	my @serials = map { Mtls::serial_hex("$d/$_.crt") } @{$o{revoke} // []};
	push @serials, @{$o{revoke_serials} // []};

	my $index = '';
	my $n = 0;
	for my $serial (@serials) {
		$serial = '0' . $serial if length($serial) % 2;
		$n++;
		$index .= "R\t$expiry\t$revoked\t$serial\tunknown\t/CN=revoked$n\n";
	}

	Mtls::spew("$w/index.txt", $index);
	Mtls::spew("$w/index.txt.attr", "unique_subject = no\n");

	my $number = '';
	if (defined $o{number}) {
		my $hex = sprintf('%X', $o{number});
		$hex = '0' . $hex if length($hex) % 2;
		Mtls::spew("$w/crlnumber", "$hex\n");
		$number = "crlnumber = $w/crlnumber\n";
	}

	Mtls::spew("$w/ca.cnf", <<"EOF");
[ca]
default_ca = myca

[myca]
database = $w/index.txt
$number
default_md = sha256
default_crl_days = 30
EOF

	my @time;
	push @time, '-crl_lastupdate', $o{lastupdate} if defined $o{lastupdate};
	push @time, '-crl_nextupdate', $o{nextupdate} if defined $o{nextupdate};
	push @time, '-crlhours', $o{hours} // 24 * 30 unless defined $o{nextupdate};

	my $key = $o{key} // $ca;
	my $file = $o{file} // "$d/$name";

	Mtls::run_cmd('openssl', 'ca', '-batch', '-gencrl', '-config', "$w/ca.cnf",
		'-cert', "$d/$ca.crt", '-keyfile', "$d/$key.key",
		'-out', "$w/crl.pem", @time);

	if ($o{der}) {
		Mtls::run_cmd('openssl', 'crl', '-in', "$w/crl.pem",
			'-outform', 'DER', '-out', "$w/crl.der");
		Mtls::spew($file, Mtls::slurp("$w/crl.der"));

	} else {
		Mtls::spew($file, Mtls::slurp("$w/crl.pem"));
	}

	return $file;
}

# a large CRL, encoded here and signed with "openssl dgst", so that a
# 1,000,000-entry CRL takes seconds instead of "openssl ca"'s minutes;
# returns its path
#
#   Mtls::PKI->big_crl("$d/big.crl", ca_cert => "$d/ca.crt",
#       ca_key => "$d/ca.key", count => 1_000_000,
#       revoke_serials => [ '1A2B' ], number => 7, der => 1);
#
# The "count" filler serials are 7E followed by a 64-bit counter (plus
# "offset"), so they never collide with the serials a CA assigns; the
# revoke_serials (hex) come first.  Options: passin (the key's passphrase
# argument for openssl, e.g. "pass:secret"), number (CRL number, default 1),
# hours (until nextUpdate, default 24 * 30), der (else PEM).  The key may be
# EC (ecdsa-with-SHA256) or RSA (sha256WithRSAEncryption).

sub big_crl {
	my ($class, $file, %o) = @_;

	# runs openssl with "-out" a scratch file, returns what it wrote
	my $out = sub {
		my ($cmd, @args) = @_;
		Mtls::run_cmd('openssl', $cmd, '-out', "$file.out", @args);
		my $content = Mtls::slurp("$file.out");
		unlink "$file.out";
		return $content;
	};

	my $cert = $out->('x509', '-in', $o{ca_cert}, '-outform', 'DER');
	my ($tag, $c) = Mtls::PKI::der_read(\$cert, 0);
	my ($tbs_tag, $tbs) = Mtls::PKI::der_read(\$c, 0);
	my ($off, @tbs) = (0);
	while ($off < length $tbs) {
		my ($t, $v, $n) = Mtls::PKI::der_read(\$tbs, $off);
		push @tbs, substr($tbs, $off, $n) unless $t == 0xa0;
		$off += $n;
	}
	# serial, signature, issuer, validity, subject, ...
	my $issuer = $tbs[2];

	my @key = ('-in', $o{ca_key});
	push @key, '-passin', $o{passin} if defined $o{passin};
	my $spki = $out->('pkey', @key, '-pubout', '-outform', 'DER');
	my $alg = index($spki, "\x06\x07\x2a\x86\x48\xce\x3d\x02\x01") >= 0
		? der_tlv(0x30, der_tlv(0x06, "\x2a\x86\x48\xce\x3d\x04\x03\x02"))
		: der_tlv(0x30, der_tlv(0x06,
			"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b") . "\x05\x00");

	my $now = time();
	my $utc = sub {
		der_tlv(0x17, POSIX::strftime('%y%m%d%H%M%SZ', gmtime(shift)));
	};
	my $revoked = $utc->($now - 3600);

	my $int = sub {
		my ($magnitude) = @_;
		$magnitude =~ s/^\x00+(?=.)//s;
		$magnitude = "\x00" . $magnitude if ord($magnitude) & 0x80;
		der_tlv(0x02, $magnitude);
	};

	my @entries;
	for my $hex (@{$o{revoke_serials} // []}) {
		$hex = '0' . $hex if length($hex) % 2;
		push @entries, der_tlv(0x30, $int->(pack('H*', $hex)) . $revoked);
	}
	my $base = $o{offset} // 0;
	for my $i (0 .. ($o{count} // 0) - 1) {
		# 30 1a 02 09 7e <8 bytes> <revocation date>
		push @entries, "\x30\x1a\x02\x09\x7e" . pack('Q>', $base + $i)
			. $revoked;
	}

	my $number = $int->(pack('Q>', $o{number} // 1));
	my $extensions = der_tlv(0xa0, der_tlv(0x30, der_tlv(0x30,
		der_tlv(0x06, "\x55\x1d\x14") . der_tlv(0x04, $number))));

	my $tbs_list = der_tlv(0x30, "\x02\x01\x01" . $alg . $issuer
		. $utc->($now - 60) . $utc->($now + 3600 * ($o{hours} // 24 * 30))
		. (@entries ? der_tlv(0x30, join('', @entries)) : '')
		. $extensions);
	@entries = ();

	Mtls::spew("$file.tbs", $tbs_list);
	my $sig = $out->('dgst', '-sha256', '-sign', @key[1 .. $#key],
		"$file.tbs");
	unlink "$file.tbs";

	my $der = der_tlv(0x30, $tbs_list . $alg . der_tlv(0x03, "\x00" . $sig));

	if ($o{der}) {
		Mtls::write_atomic($file, $der);
	} else {
		Mtls::spew("$file.der", $der);
		my $pem = $out->('crl', '-inform', 'DER', '-in', "$file.der");
		unlink "$file.der";
		Mtls::write_atomic($file, $pem);
	}

	return $file;
}

package Mtls;

# replace a file atomically: write a temporary file in the same directory,
# then rename(2) it over the old one, as a careful operator (or Kubernetes)
# does

sub write_atomic {
	my ($file, $content) = @_;
	my $tmp = "$file.tmp.$$";
	spew($tmp, $content);
	rename($tmp, $file) or die "can't rename $tmp to $file: $!\n";
}

# the current size of the error log, to look only at what comes after

sub log_mark {
	my ($t) = @_;
	return -s $t->testdir() . '/error.log' // 0;
}

# waits (at most $timeout seconds, default 5) until the error log, from
# offset $mark on, matches $re; returns the matching line, or '' on timeout

sub wait_log {
	my ($t, $mark, $re, $timeout) = @_;

	my $file = $t->testdir() . '/error.log';
	my $deadline = Time::HiRes::time() + ($timeout // 5);

	while (1) {
		my $log = -e $file ? slurp($file) : '';
		$log = length $log > $mark ? substr($log, $mark) : '';

		for my $line (split /\n/, $log) {
			return $line if $line =~ $re;
		}

		return '' if Time::HiRes::time() > $deadline;
		Time::HiRes::sleep(0.05);
	}
}

# calls $code until it returns true, at most $timeout seconds (default 5);
# returns its last value

sub wait_for {
	my ($code, $timeout) = @_;

	my $deadline = Time::HiRes::time() + ($timeout // 5);

	while (1) {
		my $v = $code->();
		return $v if $v || Time::HiRes::time() > $deadline;
		Time::HiRes::sleep(0.05);
	}
}

# the mtls_status page, fetched over plain HTTP from 127.0.0.1:$port:
# decoded JSON (undef if it is not JSON), or with "raw => 1" the whole
# response

sub mtls_status {
	my ($port, %o) = @_;

	my $uri = $o{uri} // '/status';
	my $r = Test::Nginx::http_get($uri,
		PeerAddr => "127.0.0.1:$port") // return undef;

	return $r if $o{raw};

	my ($body) = $r =~ /\x0d\x0a\x0d\x0a(.*)\z/s or return undef;

	require JSON::PP;
	my $json = eval { JSON::PP::decode_json($body) };
	warn "# status is not JSON: $@$body\n" unless $json;
	return $json;
}

# the entry of mtls_status for the source with this path (undef if none)

sub status_source {
	my ($status, $path) = @_;

	return undef unless ref $status eq 'HASH';

	for my $s (@{$status->{sources} // []}) {
		return $s if $s->{path} eq $path;
	}

	return undef;
}

# the table files of an nginx master in /dev/shm, sorted (in scalar
# context, how many)

#
# Each table has its status summary beside it, "TABLE.summary": left out,
# unless "all => 1".

sub shm_tables {
	my ($master, %o) = @_;
	my @files = sort glob("/dev/shm/ngx_mtls.$master.*");
	@files = grep { !/\.summary\z/ } @files unless $o{all};
	return @files;
}

# runs $code; returns the seconds it took and what it returned

sub timed {
	my ($code) = @_;
	my $start = Time::HiRes::time();
	my $r = $code->();
	return (Time::HiRes::time() - $start, $r);
}

# the revocation loader processes of an nginx master, found by their title
# and the master's tables in /dev/shm that they have mapped (forked from a
# worker, a loader keeps its mappings; neither its parent, nor its process
# group, which is the test's own when nginx runs with "daemon off;" under
# upstream's Test::Nginx, tells whose it is): a list of [ pid, parent pid ]

sub loaders {
	my ($master) = @_;
	my @found;

	for my $dir (glob '/proc/[0-9]*') {
		open my $fh, '<', "$dir/stat" or next;
		my $stat = <$fh> // next;
		my ($pid) = $stat =~ /^(\d+)/ or next;
		my ($state, $ppid) =
			(split ' ', substr($stat, rindex($stat, ')') + 1))[0 .. 1];
		next if $state =~ /^[ZX]/;
		next unless cmdline($pid) =~ /mtls revocation loader/;
		open my $maps, '<', "$dir/maps" or next;
		push @found, [ $pid, $ppid ]
			if grep { m! /dev/shm/ngx_mtls\.$master\.! } <$maps>;
	}

	return @found;
}

# the worker processes of the master of a test, not shutting down; once
# as many as its nginx.conf's worker_processes have their title (a worker
# has its master's title until it sets its own, which a busy machine may
# delay after $t->run() or $t->reload() return), or after 5 seconds

sub workers {
	my ($t) = @_;
	defined master_pid($t) or return ();
	my ($want) = $t->read_file('nginx.conf') =~ /^\s*worker_processes\s+(\d+)\s*;/m;
	my @w;

	wait_for(sub { @w = worker_pids($t); @w >= ($want // 1) });
	return @w;
}

# $t->reload(), then waits (at most 5 seconds) until new workers run and
# the old ones are shutting down, so that the next request sees the new
# configuration, or until the error log shows that it was refused
# (upstream's reload() only sends the signal)

sub reload {
	my ($t) = @_;

	my %old = map { $_ => 1 } worker_pids($t);
	my $mark = log_mark($t);

	$t->reload();

	wait_for(sub {
		my @serving = worker_pids($t);
		(grep { !$old{$_} } @serving) && !(grep { $old{$_} } @serving)
			|| substr($t->read_file('error.log'), $mark) =~ /\[emerg\]/;
	});

	return $t;
}

# takes out of the error log (nginx stopped) the lines that match $re,
# alerts that a test provoked and checked itself, so that the check of
# Test::Nginx at the end sees only the others; returns how many

sub take_log_lines {
	my ($t, $re) = @_;

	my $file = $t->testdir() . '/error.log';
	my @lines = split /^/, slurp($file);
	my @kept = grep { !/$re/ } @lines;

	write_atomic($file, join '', @kept);
	return @lines - @kept;
}

# the same, as they are now

sub worker_pids {
	my ($t) = @_;
	my $master = master_pid($t) // return ();
	my @w;

	for my $dir (glob '/proc/[0-9]*') {
		my ($pid) = $dir =~ m!/(\d+)$!;
		open my $fh, '<', "$dir/stat" or next;
		my $stat = <$fh> // next;
		my @f = split ' ', substr($stat, rindex($stat, ')') + 1);
		next unless $f[1] == $master;
		my $cmd = cmdline($pid);
		push @w, $pid if $cmd =~ /worker process/ && $cmd !~ /shutting/;
	}

	return @w;
}

# a process's command line, its arguments joined by spaces ('' once gone)

sub cmdline {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/cmdline" or return '';
	my $cmd = do { local $/; <$fh> } // '';
	return $cmd =~ s/\0+/ /gr;
}

# the pid of the nginx master of a test (undef while there is no pid file:
# during a binary upgrade, the old master renames it at any moment)

sub master_pid {
	my ($t) = @_;
	open my $fh, '<', $t->testdir() . '/nginx.pid' or return undef;
	my $pid = <$fh> // '';
	return $pid =~ /^(\d+)/ ? $1 : undef;
}

###############################################################################

# Helpers for the compatibility tests (t/compat_*.t): TLS session
# resumption, as in nginx's ssl_session_reuse.t.

package Mtls;

# a TLS client context with a session cache for certificate prefix $cert
# (or none, with undef); $version e.g. 'TLSv1_2'

sub client_ctx {
	my ($cert, $version) = @_;

	require IO::Socket::SSL;

	my %cert = cert_opts($cert);

	return IO::Socket::SSL::SSL_Context->new(
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
		SSL_session_cache_size => 10,
		%cert,
		$version ? (SSL_version => $version) : (),
	);
}

# one HTTP/1.0 request on a new connection made with the context, so that
# its cached session is offered; returns the raw response or undef

sub resumed_get {
	my ($port, $ctx, $uri) = @_;

	my $r;

	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		local $SIG{PIPE} = sub { die "sigpipe\n" };
		alarm(10);

		my $s = IO::Socket::SSL->new(
			PeerAddr => "127.0.0.1:$port",
			SSL_reuse_ctx => $ctx,
			SSL_hostname => 'localhost',
			Timeout => 8,
		) or die "connect: $! $IO::Socket::SSL::SSL_ERROR\n";

		$s->print("GET $uri HTTP/1.0" . CRLF() . 'Host: localhost' . CRLF()
			. CRLF());

		my $buf = '';
		while ($s->sysread(my $chunk, 16384)) {
			$buf .= $chunk;
		}

		$s->close();
		alarm(0);
		$r = $buf;
	};
	alarm(0);

	warn "# resumed_get $uri: $@" if $@;
	return $r;
}

###############################################################################

# Helpers for the HTTP/3 tests (t/*_h3.t): whether nginx and the clients
# speak HTTP/3, an aioquic client driven request by request
# (t/lib/mtls_h3_client.py), and curl.

package Mtls::H3;

use File::Basename ();
use File::Spec ();
use IPC::Open2 ();

my $client_py = File::Spec->rel2abs(
	File::Basename::dirname(__FILE__) . '/mtls_h3_client.py');

# '' where python3 has aioquic, else why not

sub missing {
	my $out = eval { Mtls::run_cmd('python3', '-c', 'import aioquic') };
	return defined $out ? '' : "python3 with aioquic (python3-aioquic): $@";
}

# One QUIC connection with HTTP/3, made by the client process
#
#   my $h3 = Mtls::H3->new(port => $port, cert => "$d/alice");
#   my $r = $h3->get('/path');     # { status, headers, body } or undef;
#                                  # a reset stream: status 'reset', error
#   my @r = $h3->get_many('/a', '/b');   # concurrent streams
#   $h3->info();      # { handshake, resumed, early_data_accepted,
#                     #   local_port, requests }
#
# Options: cert (as cert_opts), ticket (a file: the session tickets the
# server sends are saved there; with "resume => 1" the one in it is
# offered), early (with resume: the first request goes as 0-RTT data, if
# the ticket allows it).

sub new {
	my ($class, %o) = @_;

	my %cert = Mtls::cert_opts($o{cert});
	my @cmd = ('python3', $client_py, '--port', $o{port},
		$cert{SSL_cert_file}
			? ('--cert', $cert{SSL_cert_file}, '--key', $cert{SSL_key_file})
			: (),
		$o{ticket} ? ('--ticket', $o{ticket}) : (),
		$o{resume} ? ('--resume') : (),
		$o{early} ? ('--early') : ());

	my ($out, $in);
	my $pid = eval { IPC::Open2::open2($out, $in, @cmd) };
	unless ($pid) {
		warn "# h3 client: $@";
		return undef;
	}

	my $self = bless { pid => $pid, out => $out, in => $in }, $class;
	my $ready = $self->_read();

	unless ($ready && $ready->{ready}) {
		warn "# h3 connect: " . ($ready ? $ready->{error} : 'no answer') . "\n";
		$self->close();
		return undef;
	}

	return $self;
}

sub _command {
	my ($self, $line) = @_;
	return undef unless $self->{in};
	local $SIG{PIPE} = 'IGNORE';
	print { $self->{in} } "$line\n" or return undef;
	$self->{in}->flush();
	return $self->_read();
}

# the client's next answer, decoded (undef after 15 seconds or at its end)

sub _read {
	my ($self) = @_;

	my $line;
	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm(15);
		$line = readline($self->{out});
		alarm(0);
	};
	alarm(0);

	return undef unless defined $line;

	require JSON::PP;
	return eval { JSON::PP::decode_json($line) };
}

sub get {
	my ($self, $uri) = @_;
	my @r = $self->get_many($uri);
	return $r[0];
}

sub get_many {
	my ($self, @uris) = @_;
	my $r = $self->_command("GET @uris") or return ();
	return @{$r->{responses} // []};
}

sub info {
	my ($self) = @_;
	return $self->_command('INFO');
}

# whether a session ticket arrived (waits 2 seconds at most)

sub ticket {
	my ($self) = @_;
	my $r = $self->_command('TICKET');
	return $r && $r->{ticket} ? 1 : 0;
}

sub close {
	my ($self) = @_;
	return unless $self->{pid};
	$self->_command('QUIT');
	close $self->{in};
	close $self->{out};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	undef $self->{in};
	undef $self->{pid};
}

sub DESTROY {
	my ($self) = @_;
	return unless $self->{pid};
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
}

# curl's HTTP/3 ('' where it has it, else why not)

sub curl_missing {
	my $v = eval { Mtls::run_cmd('curl', '-V') } // return "no curl: $@";
	my ($version) = $v =~ /^curl (\S+)/;
	return $v =~ /^Features:.*\bHTTP3\b/m ? ''
		: 'curl ' . ($version // '?') . ' has no HTTP/3';
}

# one request on a new connection with "curl --http3-only": the raw
# response, as https_get() returns it (undef if curl failed)

sub curl_get {
	my ($port, $uri, $cert) = @_;

	my %cert = Mtls::cert_opts($cert);
	my @cmd = ('curl', '--http3-only', '-k', '-s', '-i', '-m', '10',
		'--resolve', "localhost:$port:127.0.0.1",
		$cert{SSL_cert_file}
			? ('--cert', $cert{SSL_cert_file}, '--key', $cert{SSL_key_file})
			: (),
		"https://localhost:$port$uri");

	my $r = eval { Mtls::run_cmd(@cmd) };
	warn "# curl $uri: $@" unless defined $r;
	return $r;
}

###############################################################################

1;
