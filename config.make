# Sourced by nginx's auto/make after objs/Makefile's own "modules" target is
# written (see config): "make modules" also builds this module with cargo.
# The ngx crate reads the configured tree from NGINX_SOURCE_DIR and
# NGINX_BUILD_DIR (they take precedence over .cargo/config.toml); cargo's
# target directory is inside objs/, so that two trees (pkg-oss builds one
# with --with-debug too) never share one.

ngx_mtls_dir=`cd "$ngx_addon_dir" && pwd`

cat << END                                            >> $NGX_MAKEFILE

modules:	$NGX_OBJS/ngx_http_mtls_module.so

$NGX_OBJS/ngx_http_mtls_module.so:	ngx_http_mtls_module_cargo
	cp $NGX_OBJS/mtls-cargo/release/libngx_http_mtls_module.so \$@

ngx_http_mtls_module_cargo:	$NGX_OBJS/ngx_auto_config.h
	cd $ngx_mtls_dir \\
	&& NGINX_SOURCE_DIR="\$(CURDIR)" NGINX_BUILD_DIR="\$(CURDIR)/$NGX_OBJS" \\
		cargo build --release --locked \\
		--target-dir "\$(CURDIR)/$NGX_OBJS/mtls-cargo"

.PHONY:	ngx_http_mtls_module_cargo
END
