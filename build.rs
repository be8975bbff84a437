//! Build script: checks that the nginx tree `nginx-sys` configured can host
//! this module, from the metadata `nginx-sys` exports (`DEP_NGINX_*`).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // Without the glue (fuzz targets, benchmarks) there is no nginx to check.
    if std::env::var_os("CARGO_FEATURE_NGINX").is_none() {
        return;
    }
    let features = std::env::var("DEP_NGINX_FEATURES").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);
    // The module reads the client certificate of the TLS connection.
    if !has("http_ssl") {
        panic!(
            "nginx was configured without --with-http_ssl_module; ngx_http_mtls_module needs it"
        );
    }
    // Without --with-compat, a module built here loads only into the very
    // same configuration, never into a distribution's binary.
    if !has("compat") {
        println!("cargo::warning=nginx was configured without --with-compat");
    }
}
