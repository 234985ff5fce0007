"""Maps the top-level folders to subpackages of gearspec (all metadata is in pyproject.toml).

reference/ -> gearspec.reference, conformance/ -> gearspec.conformance, fuzz/ -> gearspec.fuzz,
so an installed gearspec squats no generic import name. Editable installs follow the same map.
"""

from setuptools import find_packages, setup

MAPPED = {"reference": "gearspec.reference", "conformance": "gearspec.conformance", "fuzz": "gearspec.fuzz"}

packages = find_packages(include=["gearspec", "gearspec.*"])
package_dir = {"gearspec": "gearspec"}
for folder, name in MAPPED.items():
    package_dir[name] = folder
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
