#!/usr/bin/perl
# Build a MaxMind-format country database (.mmdb) offline from Tor's geoip
# files (Debian package tor-geoipdb), with Debian's MaxMind::DB::Writer.
#
#   perl scripts/geoip.pl OUT.mmdb [IPV4_FILE] [IPV6_FILE]
#
# Records are shaped like GeoIP2-Country ({ country => { iso_code => 'US' } })
# so that code reading the path "country" "iso_code" works with either this
# file or a MaxMind one.
#
# How the data's quirks are handled (scripts/geoip_check.py relies on these):
#  - "??" or empty country: skipped; such an address is "not found".
#  - Overlapping ranges: inserted in file order, IPv4 file first, and the
#    writer's default merge strategy ("none") lets the later insert win.
#  - Reserved/private networks: kept as the file says (remove_reserved_networks
#    => 0). The writer would otherwise drop them silently, and the files
#    already mark private space as "??".
#  - The IPv4-mapped (::ffff:0:0/96), Teredo (2001::/32) and 6to4 (2002::/16)
#    blocks are aliases of the IPv4 tree (alias_ipv6_to_ipv4), as in MaxMind's
#    own databases: a lookup there answers for the embedded IPv4 address.
#    The writer dies on any insert touching them (after inserting part of
#    the range), so IPv6 ranges are clipped around them beforehand; ::/96 is
#    clipped too, since that is where the IPv4 file's data lives.
use strict;
use warnings;

use File::Basename qw( basename );
use Math::Int128 qw( net_to_uint128 uint128_to_net );
use MaxMind::DB::Writer::Tree;
use Socket qw( AF_INET6 inet_pton inet_ntop );
use Time::HiRes qw( time );

my $prog = basename($0);

sub fail { print STDERR "$prog: @_\n"; exit 1 }

@ARGV >= 1 && @ARGV <= 3
    or fail('usage: perl scripts/geoip.pl OUT.mmdb [IPV4_FILE] [IPV6_FILE]');
my ( $out, $v4_file, $v6_file ) = @ARGV;
$v4_file //= '/usr/share/tor/geoip';
$v6_file //= '/usr/share/tor/geoip6';

my $t0 = time;

# Every map key must be typed; anything else is a bug here, so be loud.
my %key_type = ( country => 'map', iso_code => 'utf8_string' );

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 24,
    database_type            => 'Pixflare-Country',
    languages                => ['en'],
    alias_ipv6_to_ipv4       => 1,
    remove_reserved_networks => 0,
    description              => { en => description() },
    map_key_type_callback    => sub {
        $key_type{ $_[0] } // die "no MMDB type for map key '$_[0]'\n";
    },
);

# One hashref per country: the writer dedupes records by content anyway,
# this just avoids building 600k small hashes.
my %record;

my %count = map { $_ => 0 } qw( lines inserted unknown clipped aliased v4 v6 );

load( $v4_file, 4 );
load( $v6_file, 6 );

my $tmp = "$out.tmp";
{
    open my $fh, '>:raw', $tmp or fail("cannot write $tmp: $!");
    my $ok = eval { $tree->write_tree($fh); 1 };
    my $err = $@;
    if ( !$ok || !close $fh ) {
        unlink $tmp;
        fail( "writing $tmp failed: " . ( $ok ? $! : $err ) );
    }
}
rename $tmp, $out or do { unlink $tmp; fail("cannot rename $tmp to $out: $!") };

printf STDERR
    "%s: wrote %s (%d bytes): %d ranges (IPv4 %d, IPv6 %d), %d unknown-country "
    . "lines skipped, %d IPv6 ranges clipped around the IPv4 alias blocks "
    . "(%d of them wholly inside, so skipped), %.1fs\n",
    $prog, $out, -s $out, $count{inserted}, $count{v4}, $count{v6},
    $count{unknown}, $count{clipped}, $count{aliased}, time - $t0;
exit 0;

sub load {
    my ( $file, $family ) = @_;

    open my $fh, '<', $file or fail("cannot read $file: $!");
    while ( my $line = <$fh> ) {
        $count{lines}++;
        printf STDERR "%s: %d lines read, %.1fs\n", $prog, $count{lines},
            time - $t0
            if $count{lines} % 100_000 == 0;

        next if $line =~ /^\s*(?:#|$)/;
        $line =~ s/\s+\z//;

        # A malformed line means the format changed under us: stop rather
        # than build a database that silently lacks data.
        my ( $lo, $hi, $cc ) = split /,/, $line, -1;
        defined $cc && $line =~ tr/,// == 2
            or fail("$file:$.: expected LOW,HIGH,CC, got '$line'");

        if ( $cc eq '' || $cc eq '??' ) {
            $count{unknown}++;
            next;
        }
        $cc =~ /\A[A-Z0-9]{2}\z/
            or fail("$file:$.: bad country code '$cc'");
        my $data = $record{$cc} //= { country => { iso_code => $cc } };

        my @ranges
            = $family == 4
            ? [ v4_range( $file, $lo, $hi ) ]
            : v6_ranges( $file, $lo, $hi );
        if ( !@ranges ) {
            $count{aliased}++;
            next;
        }
        for my $r (@ranges) {
            eval { $tree->insert_range( @{$r}, $data ); 1 }
                or fail("$file:$.: inserting $r->[0]-$r->[1] failed: $@");
        }
        $count{inserted}++;
        $count{ $family == 4 ? 'v4' : 'v6' }++;
    }
    close $fh or fail("reading $file failed: $!");
}

# The IPv4 file holds addresses as integers; IPv4 notation makes the writer
# store them in ::/96, which is where IPv4 lookups (and the aliases) go.
sub v4_range {
    my ( $file, $lo, $hi ) = @_;
    for ( $lo, $hi ) {
        /\A[0-9]{1,10}\z/ && $_ <= 0xFFFFFFFF
            or fail("$file:$.: bad IPv4 integer '$_'");
    }
    $lo <= $hi or fail("$file:$.: range start is after its end");
    return map { join '.', unpack 'C4', pack 'N', $_ } $lo, $hi;
}

# Blocks that IPv6 ranges must not touch (see the header comment). Packed
# 16-byte addresses compare correctly as strings.
my @hole;

sub v6_ranges {
    my ( $file, $lo, $hi ) = @_;
    @hole = map { [ map { inet_pton( AF_INET6, $_ ) } @{$_} ] } (
        [ '::',        '::ffff:ffff' ],
        [ '::ffff:0:0', '::ffff:ffff:ffff' ],
        [ '2001::',    '2001:0:ffff:ffff:ffff:ffff:ffff:ffff' ],
        [ '2002::',    '2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff' ],
    ) unless @hole;

    my @r = map {
        inet_pton( AF_INET6, $_ )
            // fail("$file:$.: bad IPv6 address '$_'")
    } $lo, $hi;
    $r[0] le $r[1] or fail("$file:$.: range start is after its end");

    my @pieces = ( \@r );
    my $clipped = 0;
    for my $h (@hole) {
        @pieces = map {
            my ( $s, $e ) = @{$_};
            if ( $e lt $h->[0] || $s gt $h->[1] ) {
                ($_);
            }
            else {
                $clipped = 1;
                (
                    ( $s lt $h->[0] ? [ $s, add( $h->[0], -1 ) ] : () ),
                    ( $e gt $h->[1] ? [ add( $h->[1], 1 ), $e ] : () ),
                );
            }
        } @pieces;
    }
    $count{clipped} += $clipped;
    return map { [ map { inet_ntop( AF_INET6, $_ ) } @{$_} ] } @pieces;
}

sub add {
    my ( $packed, $delta ) = @_;
    return uint128_to_net( net_to_uint128($packed) + $delta );
}

# Metadata travels with the file, so the licence and provenance go there.
sub description {
    my $generated = '';
    if ( open my $fh, '<', $v4_file ) {
        while (<$fh>) {
            last unless /^#/;
            if (/^#\s*Generated:\s*(.+?)\s*$/) { $generated = " generated $1"; last }
        }
    }
    return
        "Country data from the IPFire Location database$generated, via Tor's "
        . 'geoip files (Debian tor-geoipdb). Licensed CC BY-SA 4.0, '
        . 'https://location.ipfire.org/';
}
