//! The parameter lists of a PTX module's entries, read from its text.
//!
//! `cuLaunchKernel` reads one argument pointer per declared parameter and
//! cannot tell how many it was given, so a launch with too few arguments
//! would read past the pointer array. Checking every launch against the
//! declared sizes (as the simulator does) makes that an error instead.

/// `(entry name, byte size of each parameter)` for every `.entry` in `ptx`.
/// Parameters of a type this does not know get size 0, which no argument
/// matches, so launching that entry fails with a message rather than guessing.
pub(crate) fn entries(ptx: &str) -> Vec<(String, Vec<u32>)> {
    // `//` comments may sit inside a signature; `/* */` are not used in PTX
    // that this project writes, and would at worst make a launch fail.
    let text: String = ptx
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(".entry") {
        rest = &rest[at + ".entry".len()..];
        let Some(open) = rest.find('(') else { break };
        let name = rest[..open].trim();
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let list = &rest[open + 1..open + close];
        rest = &rest[open + close..];
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        let sizes = list
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(param_size)
            .collect();
        out.push((name.to_owned(), sizes));
    }
    out
}

/// `.param .u64 x` is 8 bytes, `.param .align 4 .b8 s[12]` is 12.
fn param_size(decl: &str) -> u32 {
    let width = decl.split_whitespace().find_map(|t| match t {
        ".u64" | ".s64" | ".b64" | ".f64" => Some(8),
        ".u32" | ".s32" | ".b32" | ".f32" => Some(4),
        ".u16" | ".s16" | ".b16" | ".f16" => Some(2),
        ".u8" | ".s8" | ".b8" => Some(1),
        _ => None,
    });
    let count = match (decl.find('['), decl.find(']')) {
        (Some(a), Some(b)) if a < b => decl[a + 1..b].trim().parse::<u32>().ok(),
        _ => Some(1),
    };
    match (width, count) {
        (Some(w), Some(n)) => w * n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activation_entry_reads_with_its_parameter_sizes() {
        let e = entries(lasagna_kernels::activation::MODULE.ptx);
        assert_eq!(e.len(), lasagna_kernels::activation::ALL.len());
        for k in lasagna_kernels::activation::ALL {
            let (_, sizes) = e.iter().find(|(n, _)| n == k.name).unwrap();
            let want: Vec<u32> = k
                .params
                .iter()
                .map(|p| if p.kind.ptx_type() == "u64" { 8 } else { 4 })
                .collect();
            assert_eq!(sizes, &want, "{}", k.name);
        }
    }

    #[test]
    fn every_entry_of_every_module_reads_with_known_sizes() {
        for m in lasagna_kernels::MODULES {
            let declared = m.ptx.matches(".visible .entry ").count();
            let e = entries(m.ptx);
            assert_eq!(e.len(), declared, "{}", m.name);
            for (name, sizes) in e {
                assert!(
                    !sizes.is_empty() && !sizes.contains(&0),
                    "{name}: {sizes:?}"
                );
            }
        }
    }

    #[test]
    fn arrays_comments_and_unknown_types_are_sized_or_refused() {
        let ptx = ".visible .entry k(\n  .param .u32 a, // count\n  .param .align 4 .b8 s[12],\n  \
                   .param .weird w\n)\n{ ret; }\n.entry empty()\n{ ret; }";
        assert_eq!(
            entries(ptx),
            vec![("k".into(), vec![4, 12, 0]), ("empty".into(), vec![])]
        );
    }
}
