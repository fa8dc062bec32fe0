//! Unit tests of the incremental request parser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fencelock_core::protocol::{ParserLimits, RequestParser, Step};

fn parse_all(parser: &mut RequestParser, mut input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut requests = Vec::new();
    while !input.is_empty() {
        match parser.feed(input).map_err(|e| e.to_string())? {
            Step::Complete(consumed) => {
                requests.push(parser.args().map(<[u8]>::to_vec).collect());
                input = &input[consumed..];
            }
            Step::Partial => break,
            other => return Err(format!("a step this test does not know: {other:?}")),
        }
    }
    Ok(requests)
}

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn parses_arrays_of_bulk_strings() {
    let mut parser = RequestParser::new(ParserLimits::default());
    let got = parse_all(
        &mut parser,
        b"*3\r\n$7\r\nACQUIRE\r\n$1\r\na\r\n$4\r\n1000\r\n",
    )
    .unwrap();
    assert_eq!(got, vec![args(&["ACQUIRE", "a", "1000"])]);
    assert!(parser.is_idle());
}

#[test]
fn bulk_strings_may_hold_any_byte() {
    let mut parser = RequestParser::new(ParserLimits::default());
    let got = parse_all(&mut parser, b"*2\r\n$4\r\nECHO\r\n$5\r\n\r\n\0*$\r\n").unwrap();
    assert_eq!(got, vec![vec![b"ECHO".to_vec(), b"\r\n\0*$".to_vec()]]);
}

#[test]
fn parses_pipelined_and_inline_requests() {
    let mut parser = RequestParser::new(ParserLimits::default());
    let got = parse_all(
        &mut parser,
        b"PING\r\n*1\r\n$4\r\nPING\r\necho  a\tb\n\r\n  \r\nQUIT\r\n",
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            args(&["PING"]),
            args(&["PING"]),
            args(&["echo", "a", "b"]),
            args(&["QUIT"])
        ]
    );
}

#[test]
fn every_split_point_gives_the_same_requests() {
    let input: &[u8] = b"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\nPING x\r\n*1\r\n$0\r\n\r\n";
    let mut whole = RequestParser::new(ParserLimits::default());
    let expected = parse_all(&mut whole, input).unwrap();
    assert_eq!(expected.len(), 3);
    for cut in 0..=input.len() {
        let mut parser = RequestParser::new(ParserLimits::default());
        let (first, second) = input.split_at(cut);
        let mut got = Vec::new();
        for piece in [first, second] {
            let mut rest = piece;
            while let Step::Complete(consumed) = parser.feed(rest).unwrap() {
                got.push(parser.args().map(<[u8]>::to_vec).collect::<Vec<_>>());
                rest = &rest[consumed..];
            }
        }
        assert_eq!(got, expected, "cut at {cut}");
    }
}

#[test]
fn empty_array_is_no_request() {
    let mut parser = RequestParser::new(ParserLimits::default());
    assert_eq!(parser.feed(b"*0\r\n").unwrap(), Step::Partial);
    assert!(parser.is_idle());
}

#[test]
fn framing_errors_are_reported() {
    for bad in [
        &b"*x\r\n"[..],
        b"*\r\n",
        b"*-1\r\n",
        b"*1\r\n+OK\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$2\r\nabc\r\n",
        b"*1\r\n$2\r\nab\rx",
        b"*1\rx",
    ] {
        let mut parser = RequestParser::new(ParserLimits::default());
        let error = parse_all(&mut parser, bad).expect_err(&String::from_utf8_lossy(bad));
        assert!(error.starts_with("ERR Protocol error: "), "{error}");
    }
}

#[test]
fn limits_are_checked_at_the_header_before_buffering() {
    let mut limits = ParserLimits::default();
    limits.max_request_bytes = 100;
    limits.max_bulk_bytes = 10;
    limits.max_args = 3;
    let mut parser = RequestParser::new(limits);
    // The bulk header alone is refused: none of its 11 bytes were sent.
    assert!(parser.feed(b"*2\r\n$4\r\nECHO\r\n$11\r").is_err());
    let mut parser = RequestParser::new(limits);
    assert!(parser.feed(b"*4\r").is_err());
    let mut parser = RequestParser::new(limits);
    // A huge announced length is refused digit by digit, without overflow.
    assert!(parser.feed(b"*1\r\n$99999999999999999999999999").is_err());
    let mut limits = ParserLimits::default();
    limits.max_request_bytes = 30;
    limits.max_bulk_bytes = 1000;
    limits.max_args = 10;
    let mut parser = RequestParser::new(limits);
    assert!(
        parser.feed(b"*2\r\n$4\r\nECHO\r\n$20\r\n").is_err(),
        "cannot fit the request limit"
    );
}

#[test]
fn a_half_sent_request_holds_only_the_bytes_received() {
    let mut parser = RequestParser::new(ParserLimits::default());
    assert_eq!(
        parser.feed(b"*2\r\n$4\r\nECHO\r\n$1000000\r\nabc").unwrap(),
        Step::Partial
    );
    assert!(parser.buffered_bytes() < 100, "{}", parser.buffered_bytes());
    let mut parser = RequestParser::new(ParserLimits::default());
    assert_eq!(parser.feed(b"ECHO abcdef").unwrap(), Step::Partial);
    assert!(parser.buffered_bytes() <= 11);
}

#[test]
fn an_endless_inline_line_is_refused_at_the_limit() {
    let mut limits = ParserLimits::default();
    limits.max_request_bytes = 1000;
    let mut parser = RequestParser::new(limits);
    let chunk = [b'a'; 300];
    let mut refused = false;
    for _ in 0..10 {
        if parser.feed(&chunk).is_err() {
            refused = true;
            break;
        }
        assert!(parser.buffered_bytes() <= 1000);
    }
    assert!(refused);
}

/// Every request, error and partial request as a whole-buffer feed sees it, and as a feed of
/// one byte at a time sees it (which never has a whole request at hand, so never takes the
/// parser's one-pass path): they must agree.
fn outcomes(limits: ParserLimits, input: &[u8], chunk: usize) -> Vec<String> {
    let mut parser = RequestParser::new(limits);
    let mut seen = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        let mut rest = piece;
        loop {
            match parser.feed(rest) {
                Ok(Step::Complete(consumed)) => {
                    let args: Vec<Vec<u8>> = parser.args().map(<[u8]>::to_vec).collect();
                    seen.push(format!("{args:?}"));
                    rest = &rest[consumed..];
                }
                Ok(_) => break,
                Err(error) => {
                    seen.push(error.to_string());
                    return seen;
                }
            }
        }
    }
    seen.push(format!("idle {}", parser.is_idle()));
    seen
}

#[test]
fn whole_requests_read_in_one_pass_as_byte_by_byte() {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let pieces: [&[u8]; 12] = [
        b"*", b"$", b"\r\n", b"\r", b"\n", b"2", b"1", b"0", b"x", b"-1", b"ECHO", b" ",
    ];
    let mut agreed = 0;
    for round in 0..4000 {
        // A few well-formed requests, some with a piece changed, dropped or added.
        let mut input = Vec::new();
        for _ in 0..=next(3) {
            let words = 1 + next(4) as usize;
            input.extend_from_slice(format!("*{words}\r\n").as_bytes());
            for _ in 0..words {
                let len = next(14) as usize;
                input.extend_from_slice(format!("${len}\r\n").as_bytes());
                input.extend((0..len).map(|i| b"ab\r\n*$0"[(i + round) % 7]));
                input.extend_from_slice(b"\r\n");
            }
        }
        for _ in 0..next(3) {
            let at = next(input.len() as u64 + 1) as usize;
            match next(3) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 if at < input.len() => input[at] = pieces[next(12) as usize][0],
                _ => {
                    let piece = pieces[next(12) as usize];
                    input.splice(at..at, piece.iter().copied());
                }
            }
        }
        let mut limits = ParserLimits::default();
        if round % 2 == 1 {
            limits.max_args = 1 + next(4) as usize;
            limits.max_bulk_bytes = next(14) as usize;
            limits.max_request_bytes = 8 + next(60) as usize;
        }
        let whole = outcomes(limits, &input, input.len());
        let bytewise = outcomes(limits, &input, 1);
        assert_eq!(
            whole,
            bytewise,
            "{:?} with {limits:?}",
            String::from_utf8_lossy(&input)
        );
        agreed += usize::from(whole.iter().any(|seen| seen.starts_with('[')));
    }
    // Most rounds hold at least one request that parses (so the one-pass path was taken).
    assert!(agreed > 1000, "only {agreed} rounds parsed a request");
}
