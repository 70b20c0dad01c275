fn main() {
    let p = std::env::args().nth(1).unwrap();
    let t = std::time::Instant::now();
    let text = std::fs::read_to_string(std::path::Path::new(&p).join("graph.toml")).unwrap();
    let t0 = t.elapsed();
    let (tbl, errs) = toml::de::DeTable::parse_recoverable(&text);
    let t1 = t.elapsed();
    drop(tbl);
    let l = meeseeks::load::load(std::path::Path::new(&p), &Default::default());
    let t2 = t.elapsed();
    eprintln!(
        "read {:?} parse {:?} ({} errs) full load {:?} diags {}",
        t0,
        t1 - t0,
        errs.len(),
        t2 - t1,
        l.diags.items.len()
    );
}
