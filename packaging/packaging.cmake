# packaging.cmake — `cmake --install` rules and the Debian package (CPack
# DEB) of tlsp: the binary, the tlsp-relay systemd unit, an example
# /etc/tlsp/relay.conf (a conffile) and policy, the docs lintian wants, and
# the maintainer scripts (packaging/post*.in, prerm.in) that make the `tlsp`
# account and directories. scripts/package.sh builds the .deb with prefix
# /usr; docs/packaging.md says what goes where and why. The man pages and
# the bash completion add their own install() rules (docs/man/).
include(GNUInstallDirs)

# Where the installed files find each other (every path below is absolute:
# with prefix /usr, GNUInstallDirs puts sysconfdir in /etc and
# localstatedir in /var).
set(TLSP_INSTALLED_BINARY ${CMAKE_INSTALL_FULL_BINDIR}/tlsp)
set(TLSP_CONF_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/tlsp)
set(TLSP_SPOOL_DIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/spool/tlsp)
set(TLSP_STATE_DIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/tlsp)
set(TLSP_DATA_DIR ${CMAKE_INSTALL_FULL_DATADIR}/tlsp)
set(TLSP_DOC_DIR ${CMAKE_INSTALL_FULL_DOCDIR})
set(TLSP_SYSTEMD_UNIT_DIR "" CACHE PATH "where tlsp-relay.service is installed (default: PREFIX/lib/systemd/system)")
set(unit_dir "${TLSP_SYSTEMD_UNIT_DIR}")
if(unit_dir STREQUAL "")
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(TLSP_DEB_VERSION "${PROJECT_VERSION}-1")
# `cmake --install` and cpack take what is built; scripts/package.sh builds
# the `tlsp` target first (not the whole tree: the tests and benchmarks are
# not installed).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(gen ${PROJECT_BINARY_DIR}/packaging)
foreach(f tlsp-relay.service relay.conf conffiles postinst prerm postrm changelog.Debian)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${f}.in ${gen}/${f} @ONLY)
endforeach()
# Debian wants the changelog compressed at -9 and without a timestamp.
execute_process(COMMAND gzip -9nc ${gen}/changelog.Debian OUTPUT_FILE ${gen}/changelog.Debian.gz
                RESULT_VARIABLE gzip_rc)
if(NOT gzip_rc EQUAL 0)
  message(FATAL_ERROR "gzip of the Debian changelog failed")
endif()

# Full RELRO for the installed daemon: every symbol bound at start, the GOT
# read-only after that (lintian's hardening-no-bindnow). Only a relink.
target_link_options(tlsp PRIVATE -Wl,-z,relro -Wl,-z,now)
install(TARGETS tlsp RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${gen}/tlsp-relay.service DESTINATION ${unit_dir})
install(FILES ${gen}/relay.conf DESTINATION ${TLSP_CONF_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/policies/example.tlsp DESTINATION ${CMAKE_INSTALL_DATADIR}/tlsp/policies)
install(FILES ${PROJECT_SOURCE_DIR}/policies/tenants/globex.tlsp
        DESTINATION ${CMAKE_INSTALL_DATADIR}/tlsp/policies/tenants)
# The lintian findings accepted, each with its reason (docs/packaging.md).
install(FILES ${CMAKE_CURRENT_LIST_DIR}/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME tlsp)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/copyright ${gen}/changelog.Debian.gz ${PROJECT_SOURCE_DIR}/README.md
              ${PROJECT_SOURCE_DIR}/docs/packaging.md ${PROJECT_SOURCE_DIR}/docs/relay.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ------------------------------------------------------------- the .deb
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tlsp)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_CONTACT "tlsp maintainers <maintainers@users.noreply.r-seed-32a1b449.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "e-mail TLS policy compiler and enforcing SMTP relay")
set(CPACK_PACKAGE_DESCRIPTION
    "tlsp compiles a declarative policy of TLS rules between managed mail\n"
    "domains and their peers (opportunistic, mandatory, DANE, MTA-STS, minimum\n"
    "TLS version) into a checksummed decision table, simulates what the policy\n"
    "does before rollout, and enforces it on the wire with tlsp relay, an SMTP\n"
    "relay with a crash-safe spool, run as the tlsp-relay service.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: the shared libraries' packages (dpkg-shlibdeps), and adduser for
# postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "unbound")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${gen}/postinst ${gen}/prerm ${gen}/postrm ${gen}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
