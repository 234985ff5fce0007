"""gearspec.wire: Gearman on the wire: pcap dissection, the scapy layer, a validating proxy."""
