//! The driver semantics through the exported C functions, as the trainer
//! calls them. The state is global (as in a real libcuda), so the tests take
//! a lock and start from a fresh `cuInit`.

use super::*;
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// One thread's store of `v` to `p` (a `.u64` pointer and a `.u32`).
const STORE: &str = "
.version 7.0
.target sm_80
.address_size 64
.visible .entry store(.param .u64 p, .param .u32 v)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [p];
    cvta.to.global.u64 %rd1, %rd1;
    ld.param.u32 %r1, [v];
    st.global.u32 [%rd1], %r1;
    ret;
}
\0";

/// A fresh driver with `config`, the primary context retained and current.
fn open(config: Config) -> MutexGuard<'static, ()> {
    let lock = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    context::reset_for_test(Some(config));
    let mut ctx: CUcontext = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe {
        assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), 0);
        assert_eq!(cuCtxSetCurrent(ctx), 0);
    }
    lock
}

fn alloc(bytes: usize) -> CUdeviceptr {
    let mut p = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, bytes) }, 0);
    p
}

fn load_store() -> CUfunction {
    let mut m: CUmodule = std::ptr::null_mut();
    let mut f: CUfunction = std::ptr::null_mut();
    // SAFETY: NUL-terminated image, no options, valid out-pointers.
    unsafe {
        let rc = cuModuleLoadDataEx(
            &mut m,
            STORE.as_ptr().cast(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        assert_eq!(rc, 0);
        assert_eq!(cuModuleGetFunction(&mut f, m, c"store".as_ptr()), 0);
    }
    f
}

/// Launches `store(p, v)` on one thread.
fn store(f: CUfunction, mut p: CUdeviceptr, mut v: u32) -> Code {
    let mut params: [*mut c_void; 2] = [(&mut p as *mut u64).cast(), (&mut v as *mut u32).cast()];
    // SAFETY: one pointer per parameter, each to a live value of its size.
    unsafe {
        cuLaunchKernel(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            std::ptr::null_mut(),
            params.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    }
}

fn read_u32(p: CUdeviceptr) -> Result<u32, Code> {
    let mut v = 0u32;
    // SAFETY: 4 writable bytes.
    match unsafe { cuMemcpyDtoH_v2((&mut v as *mut u32).cast(), p, 4) } {
        0 => Ok(v),
        rc => Err(rc),
    }
}

#[test]
fn a_call_without_a_current_context_is_201() {
    let _lock = open(Config::default());
    set_current(0);
    let mut p = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, 16) }, INVALID_CONTEXT);
    // SAFETY: as above; a stale handle is refused too.
    assert_eq!(
        unsafe { cuCtxSetCurrent(0x1234 as CUcontext) },
        INVALID_CONTEXT
    );
}

#[test]
fn calls_before_cuinit_are_3() {
    let _lock = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    context::reset_for_test(None);
    let mut n = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { cuDeviceGetCount(&mut n) }, errors::NOT_INITIALIZED);
}

#[test]
fn an_unknown_function_name_is_500() {
    let _lock = open(Config::default());
    let f = load_store();
    assert!(!f.is_null());
    let mut m: CUmodule = std::ptr::null_mut();
    let mut g: CUfunction = std::ptr::null_mut();
    // SAFETY: as in load_store.
    unsafe {
        let rc = cuModuleLoadDataEx(
            &mut m,
            STORE.as_ptr().cast(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        assert_eq!(rc, 0);
        assert_eq!(
            cuModuleGetFunction(&mut g, m, c"nope".as_ptr()),
            errors::NOT_FOUND
        );
        assert_eq!(cuModuleUnload(m), 0);
        assert_eq!(
            cuModuleGetFunction(&mut g, m, c"store".as_ptr()),
            errors::INVALID_HANDLE
        );
    }
}

#[test]
fn a_parse_error_fills_the_callers_log_buffer_and_sets_its_size() {
    let _lock = open(Config::default());
    let bad = ".version 7.0\n.target sm_80\n.address_size 64\n.visible .entry k()\n{\n    frobnicate.u32 %r1;\n}\n\0";
    let mut log = [0xffu8; 256];
    let mut options = [5, 6];
    let mut values: [*mut c_void; 2] = [log.as_mut_ptr().cast(), log.len() as *mut c_void];
    let mut m: CUmodule = std::ptr::null_mut();
    // SAFETY: the options name a 256-byte buffer.
    let rc = unsafe {
        cuModuleLoadDataEx(
            &mut m,
            bad.as_ptr().cast(),
            2,
            options.as_mut_ptr(),
            values.as_mut_ptr(),
        )
    };
    assert_eq!(rc, errors::INVALID_PTX);
    let text = CStr::from_bytes_until_nul(&log).map(|s| s.to_string_lossy().into_owned());
    let text = text.unwrap_or_default();
    assert!(text.contains("line 6"), "log: {text:?}");
    assert_eq!(
        values[1] as usize,
        text.len() + 1,
        "filled bytes, NUL included"
    );
}

#[test]
fn a_kernel_fault_is_deferred_to_the_next_synchronizing_call_and_sticky() {
    let _lock = open(Config::default());
    let f = load_store();
    let p = alloc(16);
    // Far past the 16-byte allocation: an illegal address on hardware.
    assert_eq!(store(f, p + (1 << 20), 1), 0, "the launch itself succeeds");
    let mut free = 0;
    let mut total = 0;
    // SAFETY: valid out-pointers.
    assert_eq!(
        unsafe { cuMemGetInfo_v2(&mut free, &mut total) },
        0,
        "not a sync point"
    );
    // SAFETY: the legacy stream.
    assert_eq!(
        unsafe { cuStreamSynchronize(std::ptr::null_mut()) },
        errors::ILLEGAL_ADDRESS
    );
    assert_eq!(read_u32(p), Err(errors::ILLEGAL_ADDRESS), "sticky");
    assert_eq!(store(f, p, 1), errors::ILLEGAL_ADDRESS, "sticky");
    // SAFETY: the last release destroys the context; a new one is clean.
    unsafe {
        assert_eq!(cuDevicePrimaryCtxRelease_v2(0), 0);
        let mut ctx: CUcontext = std::ptr::null_mut();
        assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), 0);
        assert_eq!(cuCtxSetCurrent(ctx), 0);
    }
    let p = alloc(16);
    assert_eq!(read_u32(p), Ok(0));
}

#[test]
fn a_pointer_inside_an_allocation_addresses_it_at_that_offset() {
    let _lock = open(Config::default());
    let f = load_store();
    let p = alloc(64);
    assert_eq!(store(f, p + 8, 7), 0);
    assert_eq!(read_u32(p + 8), Ok(7));
    assert_eq!(read_u32(p + 4), Ok(0));
    let v = 9u32.to_ne_bytes();
    // SAFETY: 4 readable bytes.
    assert_eq!(unsafe { cuMemcpyHtoD_v2(p + 60, v.as_ptr().cast(), 4) }, 0);
    assert_eq!(read_u32(p + 60), Ok(9));
    // SAFETY: as above; 61..65 leaves the allocation.
    assert_eq!(
        unsafe { cuMemcpyHtoD_v2(p + 61, v.as_ptr().cast(), 4) },
        INVALID_VALUE
    );
    // SAFETY: only a base address can be freed.
    assert_eq!(unsafe { cuMemFree_v2(p + 8) }, INVALID_VALUE);
    // SAFETY: the base.
    assert_eq!(unsafe { cuMemFree_v2(p) }, 0);
}

#[test]
fn allocations_beyond_the_cap_or_at_the_nth_call_are_out_of_memory() {
    let _lock = open(Config {
        memory: 4096,
        oom_at: Some(3),
        ..Config::default()
    });
    let mut p = 0;
    // SAFETY: valid out-pointers.
    unsafe {
        assert_eq!(cuMemAlloc_v2(&mut p, 8192), errors::OUT_OF_MEMORY);
        assert_eq!(cuMemAlloc_v2(&mut p, 1000), 0);
        assert_eq!(
            cuMemAlloc_v2(&mut p, 16),
            errors::OUT_OF_MEMORY,
            "the 3rd call"
        );
        let (mut free, mut total) = (0, 0);
        assert_eq!(cuMemGetInfo_v2(&mut free, &mut total), 0);
        assert_eq!((free, total), (4096 - 1024, 4096));
    }
}

#[test]
fn an_injected_fault_names_its_code_at_the_launch_under_launch_blocking() {
    let _lock = open(Config {
        fault: Some(("store".into(), errors::MISALIGNED_ADDRESS)),
        launch_blocking: true,
        ..Config::default()
    });
    let f = load_store();
    let p = alloc(16);
    assert_eq!(store(f, p, 1), errors::MISALIGNED_ADDRESS);
    assert_eq!(read_u32(p), Err(errors::MISALIGNED_ADDRESS));
}

#[test]
fn error_names_cover_codes_newer_than_cust_and_refuse_unknown_ones() {
    let mut p: *const c_char = std::ptr::null();
    // SAFETY: valid out-pointer; the strings are static.
    unsafe {
        assert_eq!(cuGetErrorName(46, &mut p), 0);
        assert_eq!(CStr::from_ptr(p), c"CUDA_ERROR_DEVICE_UNAVAILABLE");
        assert_eq!(cuGetErrorString(12345, &mut p), INVALID_VALUE);
        assert!(p.is_null());
    }
}

#[test]
fn a_panic_inside_an_export_is_999_not_an_unwind() {
    assert_eq!(guard(|| panic!("deliberate")), UNKNOWN);
}
