fn main() {
    let src = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    match naga::front::wgsl::parse_str(&src) {
        Err(e) => println!("{}", e.emit_to_string(&src)),
        Ok(m) => { let r = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all()).validate(&m); println!("{:?}", r.err().map(|e| e.emit_to_string(&src))); }
    }
}
