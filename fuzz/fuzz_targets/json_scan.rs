//! The JSON scanner against serde_json: the same verdict on every input (read as text, since
//! the scanner checks the UTF-8 of strings that `from_slice` skips), and string values that
//! decode to what serde_json decodes.
#![no_main]

use choir_actors::protocol::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scan = Scanner::new(data);
    let ours = scan.value().is_ok() && scan.end().is_ok();
    let theirs = std::str::from_utf8(data)
        .is_ok_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
    assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(data));
    let mut scan = Scanner::new(data);
    if let Ok(s) = scan.string() {
        if scan.end().is_ok() {
            let text = s.text().map(|t| t.into_owned());
            let expected = std::str::from_utf8(data)
                .ok()
                .and_then(|t| serde_json::from_str::<String>(t).ok());
            assert_eq!(text, expected);
        }
    }
});
