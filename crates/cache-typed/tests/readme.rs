//! The root README's "Caching a function" example is the crate README's, which rustdoc
//! compiles and runs as a doctest (`#![doc = include_str!("../README.md")]`): the root
//! README itself is no crate's documentation, as its other examples need other crates.

/// The first Rust code block of the `## Caching a function` section of `readme`.
fn example(readme: &str) -> Option<String> {
    let section = readme.split("\n## Caching a function\n").nth(1)?;
    let section = section.split("\n## ").next()?;
    let block = section.split("```rust\n").nth(1)?;
    Some(block.split("\n```").next()?.to_owned())
}

/// The example in the root README is exactly the crate README's compiled one.
#[test]
fn the_root_readme_example_is_the_compiled_one() {
    let root = include_str!("../../../README.md");
    let crate_readme = include_str!("../README.md");
    let compiled =
        example(crate_readme).expect("crate README: a Rust block under \"Caching a function\"");
    let shown = example(root).expect("root README: a Rust block under \"Caching a function\"");
    assert!(
        compiled.contains("get_or_set"),
        "the example calls get_or_set"
    );
    assert_eq!(shown, compiled, "README.md's example differs from crates/cache-typed/README.md's (which is compiled): make them equal");
}
