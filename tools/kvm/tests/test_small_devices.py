from onekvm.devices import acpi_pm, i8042


def test_i8042_pulse_reset():
    resets = []
    k = i8042.I8042(reset=lambda: resets.append(1))
    cmd = k.port(i8042.CMD_PORT)
    cmd.write(0, 1, i8042.CMD_PULSE_RESET)
    assert resets == [1]


def test_i8042_output_port_reset_and_self_test():
    resets = []
    k = i8042.I8042(reset=lambda: resets.append(1))
    cmd, data = k.port(i8042.CMD_PORT), k.port(i8042.DATA_PORT)
    cmd.write(0, 1, i8042.CMD_SELF_TEST)
    assert cmd.read(0, 1) & i8042.STATUS_OBF
    assert data.read(0, 1) == 0x55
    cmd.write(0, 1, i8042.CMD_WRITE_OUTPUT)
    data.write(0, 1, 0x01)  # reset line high: nothing
    assert resets == []
    cmd.write(0, 1, i8042.CMD_WRITE_OUTPUT)
    data.write(0, 1, 0x00)
    assert resets == [1]


def test_pm1_cnt_s5_powers_off():
    offs = []
    pm = acpi_pm.AcpiPm(poweroff=lambda: offs.append(1))
    assert pm.read(acpi_pm.PM1_CNT_OFF, 2) & acpi_pm.SCI_EN
    pm.write(acpi_pm.PM1_CNT_OFF, 2, acpi_pm.SLP_TYP_S5 << acpi_pm.SLP_TYP_SHIFT)  # type first, no enable
    assert offs == []
    pm.write(acpi_pm.PM1_CNT_OFF, 2, acpi_pm.SLP_TYP_S5 << acpi_pm.SLP_TYP_SHIFT | acpi_pm.SLP_EN)
    assert offs == [1]


def test_pm1_cnt_other_sleep_type_ignored():
    offs = []
    pm = acpi_pm.AcpiPm(poweroff=lambda: offs.append(1))
    pm.write(acpi_pm.PM1_CNT_OFF, 2, 3 << acpi_pm.SLP_TYP_SHIFT | acpi_pm.SLP_EN)
    assert offs == []


def test_pm_timer_runs_at_3_58_mhz():
    t = [0]
    pm = acpi_pm.AcpiPm(poweroff=lambda: None, clock=lambda: t[0])
    a = pm.read(acpi_pm.PM_TMR_OFF, 4)
    t[0] += 1_000_000  # 1 ms
    b = pm.read(acpi_pm.PM_TMR_OFF, 4)
    assert (b - a) & 0xFFFFFF in range(3578, 3581)


def test_pm1_status_write_one_to_clear():
    pm = acpi_pm.AcpiPm(poweroff=lambda: None)
    pm.sts = 0x8001
    pm.write(0, 2, 0x0001)
    assert pm.sts == 0x8000
    pm.write(2, 2, 0x0120)
    assert pm.read(2, 2) == 0x0120
