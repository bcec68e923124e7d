//! Does it fit? The check before building (the model's own bytes and
//! arena against the board's budget) and the hints every does-not-fit
//! error shares, so the one before the build and the linker's after it
//! give the same advice.

use super::boards::{Board, BOARDS};
use super::host::{ModelFacts, Weights};
use super::thousands;
use crate::error::{Error, Result};
use std::path::Path;

/// The boards in the table with more of a memory than `board`, as a
/// `--board` suggestion.
pub fn larger(board: &Board, size: impl Fn(&Board) -> u32) -> String {
    let names: Vec<String> = BOARDS
        .iter()
        // Only the same core: a bigger budget on another core is another
        // build, not a fix for this one. And only the same kind: an
        // emulated board for an emulated one, a real board for a real one.
        .filter(|b| {
            b.cpu == board.cpu
                && b.qemu().is_some() == board.qemu().is_some()
                && size(b) > size(board)
        })
        .map(|b| format!("{} ({} KiB)", b.name, size(b)))
        .collect();
    if names.is_empty() {
        "a board with more".into()
    } else {
        format!("--board {}", names.join(" or "))
    }
}

/// What to do when a model with these weights (and, when known, this
/// file size) does not fit the flash.
pub fn flash_hint(weights: Weights, board: &Board, model_bytes: Option<u64>) -> String {
    let elsewhere = larger(board, |b| b.flash_kib);
    let about = |shrink: u64| {
        model_bytes.map_or(String::new(), |n| {
            format!(" (about {} B here)", thousands(n / shrink))
        })
    };
    match weights {
        Weights::F32 => format!(
            "re-export the trained model smaller: `lasagna export --model-file TRAINED.lsn \
             --quantize int8 --out model-int8.lsn` stores weights in a quarter of f32's \
             bytes{}, `--quantize f16` in half; or use {elsewhere} flash",
            about(4)
        ),
        Weights::F16 => format!(
            "re-export the trained model as int8: `lasagna export --model-file TRAINED.lsn \
             --quantize int8 --out model-int8.lsn` stores weights in half of f16's \
             bytes{}; or use {elsewhere} flash",
            about(2)
        ),
        Weights::Int8 => {
            format!("the model is already int8: train a smaller one, or use {elsewhere} flash")
        }
    }
}

/// What to do when a model does not fit the RAM.
pub fn ram_hint(weights: Weights, board: &Board) -> String {
    let elsewhere = larger(board, |b| b.ram_kib);
    match weights {
        Weights::Int8 => format!(
            "narrower layers need a smaller arena (`lasagna inspect` shows it), or use \
             {elsewhere} RAM"
        ),
        Weights::F32 | Weights::F16 => format!(
            "int8 activations take a quarter of f32's (`lasagna export --quantize int8`); \
             narrower layers take less; or use {elsewhere} RAM"
        ),
    }
}

/// Fails before building when the model alone cannot fit the board: its
/// bytes go to flash as they are, and its arena is a static in RAM.
pub fn precheck(model: &Path, board: &Board, facts: &ModelFacts) -> Result<()> {
    if facts.model_bytes > board.flash_bytes() {
        return Err(Error::DoesNotFit {
            model: model.to_path_buf(),
            board: board.name,
            memory: "flash",
            what: format!(
                "the model alone is {} B ({} weights)",
                thousands(facts.model_bytes),
                facts.weights.name()
            ),
            over: facts.model_bytes - board.flash_bytes(),
            budget_kib: board.flash_kib,
            hint: flash_hint(facts.weights, board, Some(facts.model_bytes)),
        });
    }
    if facts.arena_bytes > board.ram_bytes() {
        return Err(Error::DoesNotFit {
            model: model.to_path_buf(),
            board: board.name,
            memory: "RAM",
            what: format!(
                "the model's activation arena alone is {} B",
                thousands(facts.arena_bytes)
            ),
            over: facts.arena_bytes - board.ram_bytes(),
            budget_kib: board.ram_kib,
            hint: ram_hint(facts.weights, board),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn facts(model_bytes: u64, weights: Weights) -> ModelFacts {
        ModelFacts {
            model_bytes,
            arena_bytes: 2608,
            weights,
        }
    }

    #[test]
    fn precheck_says_by_how_much_and_suggests_the_next_smaller_export() {
        let b = &BOARDS[0];
        let e = precheck(Path::new("big.lsn"), b, &facts(2_200_000, Weights::F32))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not fit qemu-m4's flash")
                && e.contains("1,675,712 B more")
                && e.contains("--quantize int8")
                && e.contains("f16"),
            "{e}"
        );
        let e = precheck(Path::new("big.lsn"), b, &facts(600_000, Weights::F16))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--quantize int8") && !e.contains("--quantize f16"),
            "{e}"
        );
        let e = precheck(Path::new("big.lsn"), b, &facts(600_000, Weights::Int8))
            .unwrap_err()
            .to_string();
        assert!(e.contains("already int8"), "{e}");
        let mut f = facts(1000, Weights::Int8);
        f.arena_bytes = 200_000;
        let e = precheck(Path::new("m.lsn"), b, &f).unwrap_err().to_string();
        assert!(e.contains("RAM") && e.contains("arena"), "{e}");
        assert!(precheck(Path::new("m.lsn"), b, &facts(1000, Weights::Int8)).is_ok());
    }

    #[test]
    fn hints_name_the_larger_boards_of_the_table() {
        let small = Board::find("qemu-m4-small").unwrap();
        assert_eq!(
            larger(small, |b| b.flash_kib),
            "--board qemu-m4 (512 KiB) or netduinoplus2 (1024 KiB)"
        );
        let big = Board::find("qemu-m4").unwrap();
        assert_eq!(larger(big, |b| b.ram_kib), "a board with more");
        // A real board is suggested for a real board only.
        let nucleo = Board::find("nucleo-f411re").unwrap();
        assert_eq!(
            larger(nucleo, |b| b.ram_kib),
            "--board nrf52840-dk (256 KiB)"
        );
    }
}
