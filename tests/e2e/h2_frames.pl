#!/usr/bin/perl
# Writes raw HTTP/2 frames to stdout, for tests that need a client no real one would be: floods,
# resets in a loop, HPACK bombs, a client that never opens its window. Commands run in order:
#
#   preface                    the client preface and an empty SETTINGS
#   window N                   SETTINGS with INITIAL_WINDOW_SIZE N
#   get ID PATH                a GET (HEADERS with END_STREAM) on stream ID
#   post ID PATH               a POST's HEADERS without END_STREAM
#   rst ID                     RST_STREAM (CANCEL)
#   rapid_reset N PATH         N times: a GET on a new stream, then its RST_STREAM
#   ping N | settings N        N PING frames | N empty SETTINGS frames
#   empty_data ID N            N DATA frames without payload or END_STREAM
#   priority N                 N PRIORITY frames
#   window_update N            N WINDOW_UPDATE frames for the connection
#   hpack_bomb ID SIZE COUNT   a GET whose header block adds one SIZE-byte header to the dynamic
#                              table, then refers to it COUNT times (one byte each)
#   big_header ID SIZE         a GET with SIZE bytes of headers, in 30000-byte fields (HPACK
#                              decoders refuse a single field over 64 kB outright), sent as
#                              HEADERS + CONTINUATION frames
#   sleep SECONDS              keeps the connection open (and this client not reading)
use strict;
use warnings;
$| = 1;
binmode STDOUT;

sub frame {
  my ($type, $flags, $stream, $payload) = @_;
  my $len = length $payload;
  return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags, $stream) . $payload;
}

# HPACK (RFC 7541): integers with an N-bit prefix, and plain (not Huffman) strings.
sub hpack_int {
  my ($bits, $first, $v) = @_;
  my $max = (1 << $bits) - 1;
  return chr($first | $v) if $v < $max;
  my $out = chr($first | $max);
  $v -= $max;
  while ($v >= 128) { $out .= chr(($v % 128) + 128); $v = int($v / 128); }
  return $out . chr($v);
}
sub hpack_str { my ($s) = @_; return hpack_int(7, 0, length $s) . $s; }

# :method (GET 0x82 / POST 0x83), :scheme http, :path and :authority as literals.
sub request_block {
  my ($method, $path) = @_;
  return chr($method eq 'POST' ? 0x83 : 0x82) . chr(0x86) . hpack_int(4, 0, 4) . hpack_str($path)
    . hpack_int(4, 0, 1) . hpack_str('localhost');
}

use constant { DATA => 0, HEADERS => 1, PRIORITY => 2, RST_STREAM => 3, SETTINGS => 4,
               PING => 6, WINDOW_UPDATE => 8, CONTINUATION => 9 };
use constant { END_STREAM => 1, END_HEADERS => 4 };

my @args = @ARGV;
while (@args) {
  my $cmd = shift @args;
  if ($cmd eq 'preface') {
    print "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frame(SETTINGS, 0, 0, '');
  } elsif ($cmd eq 'window') {
    print frame(SETTINGS, 0, 0, pack('nN', 4, shift @args));
  } elsif ($cmd eq 'get' || $cmd eq 'post') {
    my ($id, $path) = splice(@args, 0, 2);
    my $flags = END_HEADERS | ($cmd eq 'get' ? END_STREAM : 0);
    print frame(HEADERS, $flags, $id, request_block(uc $cmd, $path));
  } elsif ($cmd eq 'rst') {
    print frame(RST_STREAM, 0, shift @args, pack('N', 8));
  } elsif ($cmd eq 'rapid_reset') {
    my ($n, $path) = splice(@args, 0, 2);
    for my $i (0 .. $n - 1) {
      my $id = 1 + 2 * $i;
      print frame(HEADERS, END_HEADERS | END_STREAM, $id, request_block('GET', $path)),
        frame(RST_STREAM, 0, $id, pack('N', 8));
    }
  } elsif ($cmd eq 'ping') {
    my $n = shift @args;
    my $ping = frame(PING, 0, 0, 'sluice!!');
    print $ping x 1000 for 1 .. int($n / 1000);
    print $ping x ($n % 1000);
  } elsif ($cmd eq 'settings') {
    print frame(SETTINGS, 0, 0, '') x shift @args;
  } elsif ($cmd eq 'empty_data') {
    my ($id, $n) = splice(@args, 0, 2);
    print frame(DATA, 0, $id, '') x $n;
  } elsif ($cmd eq 'priority') {
    my $n = shift @args;
    print frame(PRIORITY, 0, 1001 + 2 * $_, pack('NC', 0, 15)) for 0 .. $n - 1;
  } elsif ($cmd eq 'window_update') {
    print frame(WINDOW_UPDATE, 0, 0, pack('N', 1)) x shift @args;
  } elsif ($cmd eq 'hpack_bomb') {
    my ($id, $size, $count) = splice(@args, 0, 3);
    # Literal with incremental indexing, new name (0x40): it becomes dynamic entry 62.
    my $block = request_block('GET', '/') . chr(0x40) . hpack_str('x-bomb') . hpack_str('a' x $size)
      . chr(0x80 | 62) x $count;
    print frame(HEADERS, END_HEADERS | END_STREAM, $id, $block);
  } elsif ($cmd eq 'big_header') {
    my ($id, $size) = splice(@args, 0, 2);
    my $block = request_block('GET', '/');
    for (my ($i, $left) = (0, $size); $left > 0; $i++, $left -= 30000) {
      $block .= chr(0) . hpack_str("x-big-$i") . hpack_str('b' x ($left < 30000 ? $left : 30000));
    }
    my @pieces = unpack('(a16384)*', $block);
    for my $i (0 .. $#pieces) {
      my $flags = ($i == $#pieces ? END_HEADERS : 0) | ($i == 0 ? END_STREAM : 0);
      print frame($i == 0 ? HEADERS : CONTINUATION, $flags, $id, $pieces[$i]);
    }
  } elsif ($cmd eq 'sleep') {
    select(undef, undef, undef, shift @args);
  } else {
    die "h2_frames.pl: unknown command '$cmd'\n";
  }
}
