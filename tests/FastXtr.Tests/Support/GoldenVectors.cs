namespace FastXtr.Tests.Support;

/// <summary>
/// Golden vectors written by hand from the RFC field diagrams (RFC 9301 §5, RFC 8060, RFC 9300 §5.1), with the
/// checksums and HMACs computed outside our code (Python's hmac/struct, and openssl in AuthenticationTests).
/// </summary>
public static class GoldenVectors
{
    public static readonly byte[] HmacKey = "agent-key"u8.ToArray();

    /// <summary>Map-Request for [1000]10.1.0.5/32 from [1000]10.1.0.1 with one ITR-RLOC.</summary>
    public static readonly byte[] MapRequest = Hex.Parse("""
        10 00 00 01               // Type=1, no flags; Rsvd/L/D 0, IRC=0 (one ITR-RLOC); Record Count 1
        01 02 03 04 05 06 07 08   // Nonce
        40 03 00 00 02 00 00 0a   // Source-EID: AFI 16387 LCAF, Rsvd1, Flags, Type 2 (IID), IID mask-len 0, Length 10
        00 00 03 e8               //   Instance ID 1000
        00 01 0a 01 00 01         //   AFI 1, 10.1.0.1
        00 01 c0 00 02 01         // ITR-RLOC: AFI 1, 192.0.2.1
        00 20                     // EID record: Reserved (N=0), EID mask-len 32
        40 03 00 00 02 00 00 0a   //   EID-Prefix: LCAF IID, Length 10
        00 00 03 e8               //   Instance ID 1000
        00 01 0a 01 00 05         //   AFI 1, 10.1.0.5
        """);

    /// <summary>
    /// Map-Request with every flag a requester sets for an SMR-invoked, subscribing request carrying its own
    /// mapping (M) and xTR-ID (I): A M P S, p s, I, L D, two ITR-RLOCs (IPv4 and IPv6), N bit in the record.
    /// </summary>
    public static readonly byte[] MapRequestAllFlags = Hex.Parse("""
        1f d0 61 01               // Type=1 A M P S | p s R=0 I | Rsvd L D, IRC=1 (two ITR-RLOCs) | Record Count 1
        00 00 00 00 00 00 00 2a   // Nonce 42
        00 00                     // Source-EID AFI 0 (none)
        00 01 c0 00 02 01         // ITR-RLOC 1: 192.0.2.1
        00 02 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   // ITR-RLOC 2: 2001:db8::1
        80 18                     // EID record: N=1 (subscribe), mask-len 24
        00 01 0a 02 00 00         //   10.2.0.0
        00 00 00 3c               // Map-Reply record: TTL 60 minutes
        01 20 10 00               //   Locator Count 1, mask-len 32, ACT 0, A=1
        00 00 00 01 0a 01 00 01   //   Map-Version 0, EID AFI 1, 10.1.0.1
        01 64 ff 00 00 05         //   Priority 1, Weight 100, M-Priority 255, M-Weight 0, flags L R
        00 01 c0 00 02 01         //   Locator 192.0.2.1
        00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f   // xTR-ID
        00 00 00 00 00 00 00 07   // Site-ID 7
        """);

    /// <summary>Map-Reply for [1000]10.1.0.0/24 with an IPv4 and an IPv6 locator.</summary>
    public static readonly byte[] MapReply = Hex.Parse("""
        20 00 00 01               // Type=2, P=0 E=0 S=0, Record Count 1
        a1 a2 a3 a4 a5 a6 a7 a8   // Nonce
        00 00 05 a0               // Record TTL 1440 minutes
        02 18 10 00               // Locator Count 2, EID mask-len 24, ACT 0, A=1
        00 00 40 03               // Rsvd, Map-Version 0, EID-Prefix-AFI LCAF
        00 00 02 00 00 0a         //   Rsvd1, Flags, Type 2 (IID), mask-len 0, Length 10
        00 00 03 e8 00 01 0a 01 00 00   // IID 1000, AFI 1, 10.1.0.0
        01 32 ff 00 00 01         // Locator 1: Priority 1, Weight 50, M-Pri 255, M-Wt 0, flags R
        00 01 c0 00 02 02         //   192.0.2.2
        02 32 ff 00 00 05         // Locator 2: Priority 2, Weight 50, flags L R
        00 02 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02   // 2001:db8::2
        """);

    /// <summary>
    /// Map-Referral (RFC 8111 §6.4) from a DDT node: IID 1000 10.1.0.0/16 is served by two DDT Map-Servers
    /// (MS-REFERRAL, A=1), the second record a hole in the node's space (DELEGATION-HOLE, no referrals, TTL 15) with
    /// one sig section whose 4-byte signature the codec carries as it is.
    /// </summary>
    public static readonly byte[] MapReferral = Hex.Parse("""
        60 00 00 02               // Type=6, Reserved, Record Count 2
        01 02 03 04 05 06 07 08   // Nonce
        00 00 05 a0               // Record TTL 1440 minutes
        02 10 30 00               // Referral Count 2, EID mask-len 16, ACT 1 (MS-REFERRAL) A=1 I=0 -> 0011 0000
        00 00 40 03               // SigCnt 0, Map Version 0, EID-AFI LCAF
        00 00 02 00 00 0a 00 00 03 e8 00 01 0a 01 00 00   // IID 1000, AFI 1, 10.1.0.0
        01 32 ff 00 00 01         // Referral 1: Priority 1, Weight 50, M-Pri 255, M-Wt 0, flags R
        00 01 c0 00 02 0a         //   192.0.2.10
        02 32 ff 00 00 01         // Referral 2: Priority 2, Weight 50, flags R
        00 01 c0 00 02 0b         //   192.0.2.11
        00 00 00 0f               // Record TTL 15 minutes
        00 18 98 00               // Referral Count 0, mask-len 24, ACT 4 (DELEGATION-HOLE) A=1 I=1 -> 1001 1000
        10 00 00 01               // SigCnt 1, Map Version 0, EID-AFI 1
        0a 09 00 00               // 10.9.0.0
        00 00 00 0f               // sig: Original Record TTL 15
        00 00 00 02 00 00 00 01   //   Signature Expiration 2, Inception 1
        12 34 00 04               //   Key Tag 0x1234, Sig Length 4
        08 00 00 00               //   Sig-Algorithm 8, Reserved
        de ad be ef               //   Signature
        """);

    /// <summary>Negative Map-Reply: 10.1.0.0/16, no locators, ACT 4 Drop/Policy-Denied, TTL 1 minute, A=1.</summary>
    public static readonly byte[] NegativeMapReply = Hex.Parse("""
        20 00 00 01               // Type=2, Record Count 1
        00 00 00 00 00 00 00 09   // Nonce 9
        00 00 00 01               // Record TTL 1 minute
        00 10 90 00               // Locator Count 0, mask-len 16, ACT=4 (100) A=1 -> 1001 0000
        00 00 00 01 0a 01 00 00   // Map-Version 0, AFI 1, 10.1.0.0
        """);

    /// <summary>The mapping record shared by the Map-Register, Map-Notify and Map-Notify-Ack vectors.</summary>
    private const string RegisteredRecord = """
        00 00 05 a0               // Record TTL 1440
        01 20 10 00               // Locator Count 1, mask-len 32, ACT 0, A=1
        00 00 40 03               // Map-Version 0, EID AFI LCAF
        00 00 02 00 00 0a 00 00 03 e8 00 01 0a 01 00 05   // IID 1000, 10.1.0.5
        01 64 ff 00 00 05         // Locator: Priority 1, Weight 100, M-Pri 255, M-Wt 0, flags L R
        40 03 00 00 01 00 00 35   //   LCAF AFI-List (type 1), Length 53
        00 01 c0 00 02 02         //     AFI 1, 192.0.2.2
        40 03 00 00 0e 00 00 27   //     LCAF JSON (type 14), Rsvd2 0 (B=0), Length 39
        00 23                     //       JSON length 35
        7b 22 61 67 65 6e 74 2d 63 6f 6e 74 65 78 74 22 3a 7b 22 73 74 61 74 65 22 3a 22 72 65 61 64 79 22 7d 7d
                                  //       {"agent-context":{"state":"ready"}}
        00 00                     //       trailing AFI 0
        00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f   // xTR-ID
        00 00 00 00 00 00 00 01   // Site-ID 1
        """;

    /// <summary>Map-Register, I and a and M set, Key ID 0, Algorithm 2 (HMAC-SHA-256), full 32-byte digest.</summary>
    public static readonly byte[] MapRegister = Hex.Parse("""
        32 00 05 01               // Type=3 P=0 S=0 I=1 | Reserved | E=0 T=0 a=1 R=0 M=1 | Record Count 1
        11 22 33 44 55 66 77 88   // Nonce
        00 02 00 20               // Key ID 0, Algorithm ID 2, Authentication Data Length 32
        f7 61 f3 f5 13 06 0a 73 32 50 c0 29 4e ab 21 98 f9 de 20 15 26 8b 0a 21 f2 3b 25 49 e7 b7 31 c4
                                  // HMAC-SHA-256 with key "agent-key" (Python hmac)
        """ + "\n" + RegisteredRecord);

    /// <summary>Map-Notify, I set, Key ID 0, Algorithm 1 (HMAC-SHA-1), full 20-byte digest.</summary>
    public static readonly byte[] MapNotify = Hex.Parse("""
        48 00 00 01               // Type=4 I=1 R=0 | Reserved | Record Count 1
        11 22 33 44 55 66 77 88   // Nonce
        00 01 00 14               // Key ID 0, Algorithm ID 1, Authentication Data Length 20
        c3 62 22 e0 c3 41 8f 5c f2 ec 37 79 27 1f 2a f4 79 4c c3 7f   // HMAC-SHA-1 with key "agent-key"
        """ + "\n" + RegisteredRecord);

    /// <summary>Map-Notify-Ack: the Map-Notify body with Type=5.</summary>
    public static readonly byte[] MapNotifyAck = Hex.Parse("""
        58 00 00 01               // Type=5 I=1 | Record Count 1
        11 22 33 44 55 66 77 88   // Nonce
        00 01 00 14               // Key ID 0, Algorithm ID 1, Authentication Data Length 20
        62 7c ed 85 e2 2c 75 14 fa fd 2c ba 0c 66 a3 b5 0c e4 24 b7   // HMAC-SHA-1 with key "agent-key"
        """ + "\n" + RegisteredRecord);

    /// <summary>ECM around <see cref="MapRequest"/>: inner IPv4 10.1.0.1 -> 10.1.0.5, UDP 4342 -> 4342.</summary>
    public static readonly byte[] EcmMapRequest = Hex.Parse("""
        80 00 00 00               // Type=8 S=0 D=0 E=0 M=0, Reserved
        45 00 00 54 00 00 00 00   // IPv4: IHL 5, TOS 0, Total Length 84, ID 0, flags/offset 0
        40 11 66 92               //   TTL 64, protocol 17 (UDP), header checksum 0x6692
        0a 01 00 01 0a 01 00 05   //   10.1.0.1 -> 10.1.0.5
        10 f6 10 f6 00 40 47 4e   // UDP 4342 -> 4342, length 64, checksum 0x474e
        """ + "\n" + """
        10 00 00 01 01 02 03 04 05 06 07 08
        40 03 00 00 02 00 00 0a 00 00 03 e8 00 01 0a 01 00 01
        00 01 c0 00 02 01
        00 20 40 03 00 00 02 00 00 0a 00 00 03 e8 00 01 0a 01 00 05   // the Map-Request above
        """);

    /// <summary>An Info-Request (draft-ietf-lisp-nat-traversal §5) for 10.1.0.0/24, unauthenticated, written by hand.</summary>
    public static readonly byte[] InfoRequest = Hex.Parse("""
        70 00 00 00                         // type 7, R clear
        01 02 03 04 05 06 07 08             // nonce
        00 00 00 00                         // key ID 0, algorithm 0, no authentication data
        00 00 00 00                         // TTL
        00 18 00 01 0a 01 00 00             // reserved, mask-len 24, AFI 1, 10.1.0.0
        00 00                               // AFI 0: nothing follows
        """);

    /// <summary>Its Info-Reply: seen from 198.51.100.7:61001 by the Map-Server 192.0.2.10:4342, one RTR 192.0.2.100.</summary>
    public static readonly byte[] InfoReply = Hex.Parse("""
        78 00 00 00                         // type 7, R set
        01 02 03 04 05 06 07 08
        00 00 00 00
        00 00 05 a0                         // TTL 1440 minutes
        00 18 00 01 0a 01 00 00
        40 03 00 00 07 00 00 18             // LCAF, type 7 (NAT-Traversal), 24 bytes follow
        10 f6 ee 49                         // MS port 4342, ETR port 61001
        00 01 c6 33 64 07                   // Global ETR RLOC 198.51.100.7
        00 01 c0 00 02 0a                   // MS RLOC 192.0.2.10
        00 00                               // Private ETR RLOC: not known (AFI 0)
        00 01 c0 00 02 64                   // RTR 192.0.2.100
        """);
}
