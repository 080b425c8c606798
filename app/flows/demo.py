"""The demo set `python3 dev.py run` loads (`flask --app wsgi demo seed`): a department's worth of service
files to try the system with. Regions and their warehouses with spare parts in stock, about 50 customers,
200 pieces of equipment (some in warranty, some not, some monitored with three months of daily readings).
Made from a fixed seed, so every installation gets the same set; tests use their own factories instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select

from app.auth import SYSTEM
from app.engine import now
from app.extensions import db
from app.readings import service as readings
from app.readings.models import Reading
from app.registry.models import Customer, Equipment
from app.registry.service import department_today, seed_demo_data
from app.stock import service as stock
from app.stock.models import Warehouse

SEED = 20261204
CUSTOMERS = 50  # with the three of seed_demo_data
EQUIPMENT = 200
READING_DAYS = 92  # about three months back from yesterday

REGIONS = {  # region: (warehouse code, dealers and installers of the region)
    "East": ("EAST", ["Lakeside Electrical", "Hangzhou Power Service"]),
    "South": ("SOUTH", ["Pearl Power Systems", "Shenzhen UPS Partners"]),
    "North": ("NORTH", ["Capital Installers", "Tianjin Energy Works"]),
    "West": ("WEST", ["Chengdu Power Care"]),
    "Central": ("", ["Wuhan Electric Services"]),  # too small for a warehouse of its own (plan 5.6)
}
KINDS = ["Hospital", "Data Centre", "Railway Signalling", "Water Works", "University", "Bank Operations",
         "Airport Terminal", "Steel Works", "Television Centre", "Metro Control", "Telecom Exchange", "Port Authority"]
PLACES = ["Riverside", "Harbour", "Mountain", "Lakeshore", "Northgate", "Eastfield", "Southbank", "Westhill",
          "Greenway", "Old Town", "New District", "Hillcrest", "Bayview", "Stonebridge"]
CONTACTS = ["王磊", "李娜", "张伟", "刘洋", "陈静", "杨帆", "赵敏", "黄强", "周杰", "吴霞", "Li Wei", "Zhang Min",
            "Chen Jing", "Wang Fang", "Liu Bo"]
MODELS = [("EA330-10K", 4), ("EA330-20K", 4), ("EA660-60K", 3), ("EA990-120K", 2), ("EA990-200K", 1)]
SITES = ["Basement plant room", "Server hall A", "Server hall B", "Control room", "Ward 3 nurses' station",
         "Signal box", "Network room", "Operating theatres", "Roof plant room", "Substation 2"]
PARTS = [("FUS-125A", "Rectifier fuse 125 A", 20), ("FUS-250A", "Rectifier fuse 250 A", 10),
         ("CAP-4700", "DC bus capacitor 4700 uF", 12), ("FAN-120", "Cooling fan 120 mm", 16),
         ("FAN-172", "Cooling fan 172 mm", 8), ("BAT-12V-100", "Battery block 12 V 100 Ah", 40),
         ("BAT-12V-200", "Battery block 12 V 200 Ah", 24), ("IGBT-450", "IGBT module 450 A", 4),
         ("CTL-BRD-3", "Controller board rev. 3", 3), ("LCD-PNL", "Front panel display", 5),
         ("SNMP-CARD", "Network management card", 6), ("RELAY-BYP", "Static bypass relay", 4)]


@dataclass(frozen=True)
class DemoReport:
    """What loading the demo set added."""

    customers: int
    equipment: int
    warehouses: int
    readings: int


def load_demo_set() -> DemoReport:
    """Add the demo set to an empty registry (nothing when customers exist beyond seed_demo_data's)."""
    rng = random.Random(SEED)
    seed_demo_data()
    if (db.session.scalar(select(func.count()).select_from(Customer)) or 0) > 3:
        return DemoReport(0, 0, 0, 0)
    current = now()
    today = department_today()
    warehouses = 0
    for region, (code, _) in REGIONS.items():
        if code and db.session.scalar(select(Warehouse.id).where(Warehouse.region == region)) is None:
            stock.create_warehouse(actor=SYSTEM, code=code, name=f"{region} regional warehouse", region=region)
            warehouses += 1
    for number, name, _ in PARTS:
        stock.create_part(actor=SYSTEM, part_number=number, name=name)
    for region, (code, _) in REGIONS.items():
        if code:
            for number, _, opening in PARTS:
                stock.receive_stock(actor=SYSTEM, region=region, part_number=number,
                                    quantity=max(1, opening + rng.randint(-opening // 2, opening // 2)),
                                    note="demo opening stock")
    customers: list[Customer] = []
    used_names: set[str] = set(db.session.scalars(select(Customer.name)))
    while len(customers) < CUSTOMERS - 3:
        name = f"{rng.choice(PLACES)} {rng.choice(KINDS)}"
        if name in used_names:
            continue
        used_names.add(name)
        region = rng.choice(list(REGIONS))
        contact = rng.choice(CONTACTS)
        phone = f"+86 {rng.randint(10, 99)} 5550 {rng.randint(1000, 9999)}"
        customer = Customer(name=name, contact_name=contact, phone=phone,
                            email=f"service{len(customers) + 10}@{name.lower().replace(' ', '')[:16]}.example",
                            region=region, address=f"{rng.randint(1, 300)} {rng.choice(PLACES)} Road, {region}",
                            created_at=current)
        db.session.add(customer)
        customers.append(customer)
    db.session.flush()
    models = [model for model, weight in MODELS for _ in range(weight)]
    units: list[Equipment] = []
    existing = db.session.scalar(select(func.count()).select_from(Equipment)) or 0
    for n in range(EQUIPMENT - existing):
        customer = customers[n % len(customers)] if n < len(customers) else rng.choice(customers)
        model = rng.choice(models)
        installed = today - timedelta(days=rng.randint(60, 7 * 365))
        warranty_years = rng.choice([2, 3, 3, 5])
        unit = Equipment(customer=customer, model=model,
                         serial_number=f"{model.replace('-', '')}{n + 1000:05d}", site=rng.choice(SITES),
                         region=customer.region, installed_on=installed,
                         warranty_ends_on=installed + timedelta(days=365 * warranty_years),
                         dealer=rng.choice(REGIONS[customer.region][1]), monitored=rng.random() < 0.4)
        db.session.add(unit)
        units.append(unit)
    db.session.flush()
    added_readings = 0
    monitored = [u for u in db.session.scalars(select(Equipment).where(Equipment.monitored.is_(True))
                                                .order_by(Equipment.id))]
    for unit in monitored:
        if db.session.scalar(select(func.count()).select_from(Reading).where(Reading.equipment_id == unit.id)):
            continue
        days = []
        load = rng.uniform(25, 70)
        health = rng.uniform(82, 99)
        for back in range(READING_DAYS, 0, -1):
            day: date = today - timedelta(days=back)
            values = {"day": day.isoformat(), "input_voltage": round(rng.gauss(221, 4), 1),
                      "output_voltage": round(rng.gauss(220, 1.2), 1),
                      "load_percent": round(min(99.0, max(5.0, rng.gauss(load, 6))), 1),
                      "battery_health_percent": round(max(60.0, health - back * 0.01), 1),
                      "temperature_c": round(rng.gauss(27, 2.5), 1), "alarm_codes": []}
            if rng.random() < 0.015:  # now and then a bad day: mains sag, overload, heat
                values.update(rng.choice([{"input_voltage": 158.0, "alarm_codes": ["UPS_ON_BATTERY"]},
                                          {"load_percent": 96.5, "alarm_codes": ["OVERLOAD"]},
                                          {"temperature_c": 44.0, "alarm_codes": ["BATT_TEMP_HIGH"]}]))
            days.append(values)
        added_readings += len(readings.record_readings(actor=SYSTEM, equipment_id=unit.id, readings=days).created)
    return DemoReport(customers=len(customers), equipment=len(units), warehouses=warehouses, readings=added_readings)
