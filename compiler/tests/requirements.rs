//! Libraries the test suite links, checked here so that a machine without them gets one clear
//! failure instead of a linker error (`.ci/run` installs them; see README).

/// Set by build.rs when libseccomp.so can be linked: the libseccomp comparisons
/// (libseccomp_differential.rs, docker.rs) are compiled only then.
#[cfg(not(scpc_libseccomp))]
#[test]
fn libseccomp_is_installed() {
    panic!(
        "libseccomp is not installed: the tests comparing scpc with libseccomp need Debian's \
         libseccomp-dev (`apt-get install libseccomp-dev`, or run `bash .ci/run`, which installs \
         everything the tests need)"
    );
}

/// The comparisons are written against libseccomp 2.5 (Debian 12's).
#[cfg(scpc_libseccomp)]
#[test]
fn libseccomp_is_installed() {
    let v = libseccomp::ScmpVersion::current().expect("libseccomp reports its version");
    assert!((v.major, v.minor) >= (2, 5), "libseccomp {}.{} is older than 2.5", v.major, v.minor);
}
