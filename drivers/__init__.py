"""One package per radio protocol; each implements `bridge.driver.LockDriver`."""
