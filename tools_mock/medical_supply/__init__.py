"""The medical supply system: home medical equipment for patients, delivered to their door.

Patients, prescriptions (with refills and expiry), an equipment catalogue with stock,
insurance plans with coverage per item category, equipment orders, delivery slots,
emergency dispatches and hand-offs to a human agent.

Example:
    >>> from envsim.tools import ToolRegistry
    >>> from envsim.world import World
    >>> tools = ToolRegistry([MedicalSupplyToolkit(World(MedicalSupplyToolkit.fixtures["small"](0)))])
    >>> tools.call("get_patient", {"patient_id": "PT-0999"}).content
    '{"error":{"type":"not_found","message":"patient \\'PT-0999\\' not found"}}'
"""

from tools_mock.medical_supply.models import MedicalSupplyState
from tools_mock.medical_supply.toolkit import MedicalSupplyToolkit

__all__ = ["MedicalSupplyState", "MedicalSupplyToolkit"]
