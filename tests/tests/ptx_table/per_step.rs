//! Rows for the kernels that run once per training step in place of several
//! launches: `gather_batch` (the batch and its labels), `gather_batch_step`
//! (the same in a replayed step graph, its start read from the step table)
//! and `adam_step_multi` (every tensor's Adam step). Arguments follow
//! `trainer/src/backend/gpu/{data,optim}.rs`. In their own file because
//! `rows.rs` is past the ~20 KB a file should hold.

use super::{out, Gen, In, Row, F32, PARAMS, PARAMS_SHAPE, U32, U64};
use lasagna_kernels::{gather as kg, optim as ko};

/// The MNIST batch of the `gather_*` rows: 64 images of 784 pixels from a
/// device-resident source of 1024, with their labels.
const ROWS: usize = 64;
const COLS: usize = 784;
const SRC: usize = 1024;

/// `dst[r, :] = src[idx[r], :]` and `dst_labels[r] = labels[idx[r]]`: as the
/// eager step gathers a batch (`gather_batch`), and as a replayed one does
/// (`gather_batch_step`).
pub fn gather_batch(g: &mut Gen) -> Vec<Row> {
    let n = ROWS * COLS;
    let idx = g.idx(ROWS, SRC);
    let args = batch_args(g, idx);
    // The replayed kernel gathers at order + start, start from the table.
    let order = g.idx(SRC, SRC);
    let mut step_args = batch_args(g, order);
    step_args.push(In::Bytes(step_table()));
    let launch = kg::gather_batch_launch(ROWS, COLS, SRC, SRC).unwrap();
    vec![
        Row {
            kernel: &kg::GATHER_BATCH,
            shape: format!("batch of {ROWS} from {SRC} images x {COLS}, with labels"),
            per: ("dst", n),
            launch,
            args,
        },
        Row {
            kernel: &kg::GATHER_BATCH_STEP,
            shape: format!(
                "as gather_batch, start from a {}-step table (replayed step)",
                SRC / ROWS
            ),
            per: ("dst", n),
            launch,
            args: step_args,
        },
    ]
}

/// `gather_batch`'s first nine arguments, `idx` being the batch's indices
/// (or the epoch's order, for `gather_batch_step`).
fn batch_args(g: &mut Gen, idx: In) -> Vec<In> {
    let n = ROWS * COLS;
    vec![
        g.x(SRC * COLS),
        idx,
        out(n),
        U64(n as u64),
        U32(COLS as u32),
        U32(SRC as u32),
        g.idx(SRC, 10),
        In::U32s(vec![0; ROWS]),
        U32(SRC as u32),
    ]
}

/// One epoch's step table (`kg::step_table` layout, as the GPU backend's
/// `table_bytes` writes it): row k starts at batch k, its dropout base is
/// step k's and its Adam scalars are those of step k + 1; the counter is 0
/// (the first replay after the upload).
fn step_table() -> Vec<u8> {
    use kg::step_table as st;
    let steps = SRC / ROWS;
    let mut b = vec![0u8; (st::ROWS + steps as u64 * st::ROW_BYTES) as usize];
    for k in 0..steps {
        let at = (st::ROWS + k as u64 * st::ROW_BYTES) as usize;
        let s = ko::AdamScalars::new(1e-3, 0.9, 0.999, 0.0, k as u64 + 1);
        // The trainer's dropout stride (`model::LAYER_STRIDE`, crate-private).
        let base = k as u64 * 1024;
        let fields: [(u64, &[u8]); 5] = [
            (st::START, &((k * ROWS) as u32).to_le_bytes()),
            (st::DROPOUT_BASE, &base.to_le_bytes()),
            (st::ADAM, &s.step_size.to_le_bytes()),
            (st::ADAM + 4, &s.bc2_sqrt.to_le_bytes()),
            (st::ADAM + 8, &s.decay.to_le_bytes()),
        ];
        for (off, v) in fields {
            let o = at + off as usize;
            b[o..o + v.len()].copy_from_slice(v);
        }
    }
    b
}

/// The MLP's four tensors (784x128 and 128 weights and bias, 10x128 and 10)
/// in one launch, as `adam_step_many` runs an eager step: the scalars as
/// parameters (`scalars` null), the twelve unused slots zero.
pub fn adam_step_multi(g: &mut Gen) -> Vec<Row> {
    let lens = [784 * 128, 128, 128 * 10, 10];
    assert_eq!(lens.iter().sum::<usize>(), PARAMS);
    let s = ko::AdamScalars::new(1e-3, 0.9, 0.999, 0.0, 10);
    let mut args = vec![
        F32(0.9),
        F32(0.999),
        F32(s.step_size),
        F32(s.bc2_sqrt),
        F32(1e-8),
        F32(0.0),
        F32(s.decay),
        U32(0),
        In::Null,
        U32(lens.len() as u32),
    ];
    for &n in &lens {
        args.extend([g.x(n), g.x(n), g.x(n), g.pos(n), U64(n as u64)]);
    }
    for _ in lens.len()..ko::MULTI_SLOTS {
        args.extend([In::Null, In::Null, In::Null, In::Null, U64(0)]);
    }
    vec![Row {
        kernel: &ko::ADAM_STEP_MULTI,
        shape: format!(
            "{PARAMS_SHAPE} in {} tensors, Adam step 10 (eager)",
            lens.len()
        ),
        per: ("param", PARAMS),
        launch: ko::adam_multi_launch(&lens).unwrap(),
        args,
    }]
}
