"""Maps the top-level folders to subpackages of gearspec (all metadata is in pyproject.toml).

reference/ -> gearspec.reference, conformance/ -> gearspec.conformance, fuzz/ -> gearspec.fuzz,
so an installed gearspec squats no generic import name. Editable installs follow the same map.

gearspec._speedups is the decoder's optional C hot path: without a C compiler the build goes
on without it and gearspec.codec uses its pure-Python decoder (same events, same errors).
"""

from setuptools import Extension, find_packages, setup

MAPPED = {"reference": "gearspec.reference", "conformance": "gearspec.conformance", "fuzz": "gearspec.fuzz"}

packages = find_packages(include=["gearspec", "gearspec.*"])
package_dir = {"gearspec": "gearspec"}
for folder, name in MAPPED.items():
    package_dir[name] = folder
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

speedups = Extension("gearspec._speedups", ["gearspec/_speedups.c"], optional=True)

setup(packages=packages, package_dir=package_dir, ext_modules=[speedups])
