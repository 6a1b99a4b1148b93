#!/usr/bin/perl
# A Net::SMPP (Debian libnet-smpp-perl) ESME for tests/interop/test_net_smpp.py.
#
# Reads a scenario as JSON on stdin, runs it against the bridge and prints one JSON
# report on stdout: what Net::SMPP itself decoded from every PDU the bridge sent.
#
# Scenario: {host, port, system_id, password, bind: transmitter|receiver|transceiver,
#            messages: [{destination_addr, text, data_coding, registered_delivery, long}],
#            queries: [message_id, ...], receipts: how many receipts to wait for,
#            timeout}
# Flow: bind (synchronous, as Net::SMPP's constructors do), then Net::SMPP's
# asynchronous mode: every submit_sm and query_sm goes out at once and a read_pdu
# loop takes the answers, the receipts (answered with deliver_sm_resp) and the
# bridge's enquire_link (answered) in whatever order they come; then unbind.
# A message with "long" is cut the way the module's documentation shows: 153
# characters per part behind a UDH 05 00 03 ref n i, esm_class 0x40.
use strict;
use warnings;
use IO::Select;
use JSON::PP;
use Net::SMPP;

my $json = JSON::PP->new->canonical;
my $scenario = $json->decode(do { local $/; <STDIN> });
my %report = (bind => undef, submits => [], queries => [], deliver_sms => [], server_enquire_links => 0,
              server_unbinds => 0, unbind_resp => undef, errors => []);

sub finish {
    my ($error) = @_;
    push @{$report{errors}}, $error if defined $error;
    print $json->encode(\%report), "\n";
    exit 0;
}

sub status_name {
    my ($status) = @_;
    my $entry = Net::SMPP::status_code->{$status};
    return $entry ? $entry->{code} : sprintf('0x%08x', $status);
}

my %bind_methods = (transmitter => 'bind_transmitter', receiver => 'bind_receiver',
                    transceiver => 'bind_transceiver');
my $bind_method = $bind_methods{$scenario->{bind} || 'transceiver'} or finish('unknown bind type');
my $smpp = Net::SMPP->new_connect($scenario->{host} || '127.0.0.1', port => $scenario->{port},
                                  system_id => $scenario->{system_id}, password => $scenario->{password},
                                  timeout => 5, smpp_version => 0x34)
    or finish("connect failed: $!");
my $bind = $smpp->$bind_method() or finish('bind: ' . ${*$smpp}{smpperror});
$report{bind} = {command => Net::SMPP::pdu_tab->{$bind->{cmd}}{cmd}, command_status => $bind->{status},
                 status_name => status_name($bind->{status}), system_id => $bind->{system_id}};
finish(undef) if $bind->{status} != 0;

my %pending;    # sequence number -> [kind, index]
my $reference = 0x42;
for my $message (@{$scenario->{messages} || []}) {
    my @parts = ($message->{text});
    my $esm_class = 0x00;
    if ($message->{long}) {
        my $text = $message->{text};
        my @chunks;
        push @chunks, substr($text, 0, 153, '') while length $text;
        @parts = map { pack('C6', 5, 0, 3, $reference, scalar @chunks, $_ + 1) . $chunks[$_] } 0 .. $#chunks;
        $esm_class = 0x40;
        $reference++;
    }
    for my $part (@parts) {
        my $seq = $smpp->submit_sm(
            async => 1,
            source_addr_ton => 1, source_addr_npi => 1, source_addr => $scenario->{source_addr},
            dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => $message->{destination_addr},
            esm_class => $esm_class, data_coding => $message->{data_coding} || 0,
            registered_delivery => $message->{registered_delivery} || 0,
            short_message => $part,
        );
        push @{$report{submits}}, {destination_addr => $message->{destination_addr}, sent => 1};
        $pending{$seq} = ['submits', $#{$report{submits}}];
    }
}
for my $message_id (@{$scenario->{queries} || []}) {
    my $seq = $smpp->query_sm(async => 1, message_id => $message_id, source_addr_ton => 1, source_addr_npi => 1,
                              source_addr => $scenario->{source_addr});
    push @{$report{queries}}, {asked => $message_id};
    $pending{$seq} = ['queries', $#{$report{queries}}];
}

my $deadline = time + ($scenario->{timeout} || 15);
my $receipts = sub { scalar grep { $_->{esm_class} & 0x04 } @{$report{deliver_sms}} };
my $select = IO::Select->new($smpp);
my $unbind_seq;
while (1) {
    if (!defined $unbind_seq && !%pending && $receipts->() >= ($scenario->{receipts} || 0)) {
        $unbind_seq = $smpp->unbind(async => 1);
    }
    my $left = $deadline - time;
    finish('timeout') if $left <= 0;
    next unless $select->can_read($left);
    my $pdu = $smpp->read_pdu() or finish('read_pdu: ' . ${*$smpp}{smpperror});
    my $command = $pdu->{known_pdu} ? Net::SMPP::pdu_tab->{$pdu->{cmd}}{cmd} : sprintf('0x%08x', $pdu->{cmd});
    if ($command eq 'deliver_sm') {
        push @{$report{deliver_sms}}, {
            map({ $_ => $pdu->{$_} } qw(esm_class source_addr destination_addr source_addr_ton dest_addr_ton
                                       data_coding short_message receipted_message_id)),
            message_state => defined $pdu->{message_state} ? unpack('C', $pdu->{message_state}) : undef,
        };
        $smpp->deliver_sm_resp(seq => $pdu->{seq}, message_id => '');
    } elsif ($command eq 'enquire_link') {
        $report{server_enquire_links}++;
        $smpp->enquire_link_resp(seq => $pdu->{seq});
    } elsif ($command eq 'unbind') {
        $report{server_unbinds}++;
        $smpp->unbind_resp(seq => $pdu->{seq});
        finish('unbound by the bridge');
    } elsif (defined $unbind_seq && $pdu->{seq} == $unbind_seq) {
        $report{unbind_resp} = {command => $command, command_status => $pdu->{status}};
        finish(undef);
    } elsif (my $slot = delete $pending{$pdu->{seq}}) {
        my ($kind, $index) = @$slot;
        my $entry = $report{$kind}[$index];
        $entry->{command} = $command;
        $entry->{command_status} = $pdu->{status};
        $entry->{status_name} = status_name($pdu->{status});
        $entry->{$_} = $pdu->{$_} for grep { exists $pdu->{$_} } qw(message_id final_date message_state error_code);
    } else {
        push @{$report{errors}}, "unexpected $command seq $pdu->{seq}";
    }
}
